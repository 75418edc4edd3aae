"""A run folder read back: its settings and its best network.

Training writes a run folder; serving, evaluation, inspection and further training (a
refining stage reads its coarse stage) read it. This module sits below all of them and
needs only the core and the data pipeline, so none of them pulls training along.
"""

import io
import json
import os

import h5py
import tensorflow as tf

from fkd_tf.utils import io_utils
from fkd_tf.core import config as config_lib
from fkd_tf.core import models
from fkd_tf.data import pipeline

CONFIG = "config.json"
# The network's own weights (not the trainer's): loadable into `models.build(config.model)`.
BEST_WEIGHTS = "best.weights.h5"


class RunFolderError(ValueError):
  """A run folder that cannot be read back; the message names the folder and the file."""


def read_config(model_dir):
  """The TrainConfig a run was trained with."""
  path = os.path.join(model_dir, CONFIG)
  if not io_utils.isfile(path):
    raise RunFolderError(f"{model_dir} is not a run folder: it has no {CONFIG}")
  try:
    with tf.io.gfile.GFile(path) as f:
      return config_lib.from_json(json.load(f))
  except (ValueError, KeyError, TypeError) as e:
    raise RunFolderError(f"{path} is not a readable training config: {e}") from None


def load_network(model_dir):
  """The best-on-validation network of a finished run, and its TrainConfig."""
  config = read_config(model_dir)
  path = os.path.join(model_dir, BEST_WEIGHTS)
  if not io_utils.isfile(path):
    raise RunFolderError(f"{model_dir} has no {BEST_WEIGHTS}: the run has not finished an "
                         "epoch")
  network = models.build(config.model)
  try:
    network.load_weights(path)
  except (OSError, ValueError, KeyError, TypeError) as e:
    # h5py names neither the run nor the setting that led here (a truncated copy says
    # only "truncated file: eof = ..."): the caller adds the flag, this adds the file.
    raise RunFolderError(f"{path} cannot be loaded into a {config.model} network "
                         f"({_first_line(e)})") from None
  return network, config


def _first_line(error):
  return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"


def check_weights_file(path):
  """Reads every array of a Keras .weights.h5 file, so that a missing, truncated or
  foreign file is refused by name before anything depends on it.

  Only h5py is used, no TensorFlow op: a multi-worker run must create its strategy
  before other TF work, and this check runs before that.

  Raises:
    RunFolderError naming `path`.
  """
  if not io_utils.isfile(path):
    raise RunFolderError(f"{path} not found")
  arrays = []
  def read(_, item):  # visititems stops at the first callback that returns a value
    if isinstance(item, h5py.Dataset):
      arrays.append(item[()])
  try:
    with h5py.File(io.BytesIO(io_utils.read_bytes(path)), "r") as weights:
      weights.visititems(read)
  except (OSError, ValueError, KeyError, RuntimeError) as e:
    raise RunFolderError(f"{path} is not a readable weights file, truncated or damaged "
                         f"({_first_line(e)})") from None
  if not arrays:
    raise RunFolderError(f"{path} holds no weights")


def warmup_images(tfrecord_dir, count=4):
  """A few encoded validation images, for the SavedModel's warm-up requests."""
  dataset = pipeline.make_dataset(tfrecord_dir, "val", count, training=False,
                                  with_bytes=True, cache=False)
  return list(next(iter(dataset))["image_bytes"].numpy())
