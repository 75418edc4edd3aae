"""A run folder read back: its settings and its best network.

Training writes a run folder; serving, evaluation, inspection and further training (a
refining stage reads its coarse stage) read it. This module sits below all of them and
needs only the core and the data pipeline, so none of them pulls training along.
"""

import json
import os

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
  network.load_weights(path)
  return network, config


def warmup_images(tfrecord_dir, count=4):
  """A few encoded validation images, for the SavedModel's warm-up requests."""
  dataset = pipeline.make_dataset(tfrecord_dir, "val", count, training=False,
                                  with_bytes=True, cache=False)
  return list(next(iter(dataset))["image_bytes"].numpy())
