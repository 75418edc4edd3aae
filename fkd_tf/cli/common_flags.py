"""Flags that several commands share, defined in one place with one meaning.

Only the command-line modules (train, evaluate, export, predict, inspect_run, bench)
import this; library code takes plain arguments.
"""

import logging
import os

from absl import flags
from absl import logging as absl_logging

from fkd_tf.serving import versions

DEFAULT_TFRECORD_DIR = "data/tfrecords"


def _not_library_info(record):
  """False for INFO (and DEBUG) records logged from TensorFlow's or Keras' own files."""
  if record.levelno >= logging.WARNING:
    return True
  return not any(f"{os.sep}{package}{os.sep}" in record.pathname
                 for package in ("tensorflow", "keras", "tf_keras"))


# TensorFlow's Python INFO lines (signature input names, checkpoint sharding times, asset
# folders of temporary exports, fingerprints) say nothing a user acts on. Its warnings
# still show, and fkd_tf's own absl INFO lines are untouched.
logging.getLogger("tensorflow").setLevel(logging.WARNING)
absl_logging.get_absl_handler().addFilter(_not_library_info)


def define_tfrecord_dir(default=DEFAULT_TFRECORD_DIR, extra_help=""):
  flags.DEFINE_string("tfrecord_dir", default, "Folder of shards and dataset_info.json "
                      "written by tools.convert_to_tfrecord." + extra_help)


def define_saved_model(default=versions.SHIPPED_MODEL, extra_help=""):
  """--saved_model: a version folder, or a base holding numeric versions (newest used)."""
  flags.DEFINE_string("saved_model", default, "SavedModel: a version folder, or a base "
                      "folder holding numeric versions (the newest is used); default: the "
                      "shipped model." + extra_help)
