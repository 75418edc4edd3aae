"""fkd_tf: 68-point facial keypoints (iBUG 300-W order) in TensorFlow/Keras.

  import fkd_tf
  faces = fkd_tf.load().detect("photo.jpg")   # one Face per face: box, score, keypoints
  keypoints = fkd_tf.load().predict("photo.jpg", boxes=[[x0, y0, x1, y1]])  # your own boxes
"""

import os

__version__ = "0.3.0"


def _has_nvidia_driver():
  """Whether this machine has an NVIDIA driver (Linux: /proc/driver/nvidia; WSL: /dev/dxg)."""
  return any(os.path.exists(p) for p in ("/proc/driver/nvidia", "/dev/nvidiactl", "/dev/dxg"))


# TensorFlow's C++ INFO and WARNING lines (CPU features, each converter step) bury a
# command's progress and result. Without an NVIDIA driver its GPU probe also logs an ERROR,
# "failed call to cuInit ... (303)", on every CPU machine: nothing failed, so there errors
# are hidden too (a failing op still raises in Python); with a driver they show, and the
# trainer logs the devices it found. Only a default, and only where TensorFlow is not
# loaded yet: TF_CPP_MIN_LOG_LEVEL=0 brings everything back.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2" if _has_nvidia_driver() else "3")


def load(path=None, backend="auto", num_threads=None):
  """The shipped model, or the export at `path`: a `fkd_tf.inference.api.KeypointModel`."""
  from fkd_tf.inference import api  # pylint: disable=g-import-not-at-top  (import fkd_tf stays light)
  return api.load(path, backend, num_threads)
