"""fkd_tf: 68-point facial keypoints (iBUG 300-W order) in TensorFlow/Keras.

  import fkd_tf
  keypoints = fkd_tf.load().predict("face.jpg")   # [1, 68, 2] in image pixels
"""

import os

__version__ = "0.2.0"

# TensorFlow's C++ INFO lines (CUDA probing, CPU features, each converter step) bury a
# command's progress and result; warnings and errors still show. Only a default, and only
# where TensorFlow is not loaded yet: TF_CPP_MIN_LOG_LEVEL=0 brings them back.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")


def load(path=None, backend="auto", num_threads=None):
  """The shipped model, or the export at `path`: a `fkd_tf.inference.api.KeypointModel`."""
  from fkd_tf.inference import api  # pylint: disable=g-import-not-at-top  (import fkd_tf stays light)
  return api.load(path, backend, num_threads)
