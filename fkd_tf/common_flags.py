"""Flags that several commands share, defined in one place with one meaning.

Only the command-line modules (train, evaluate, export, predict, inspect_run, bench)
import this; library code takes plain arguments.
"""

from absl import flags

from fkd_tf.serving import versions

DEFAULT_TFRECORD_DIR = "data/tfrecords"


def define_tfrecord_dir(default=DEFAULT_TFRECORD_DIR, extra_help=""):
  flags.DEFINE_string("tfrecord_dir", default, "Folder of shards and dataset_info.json "
                      "written by tools.convert_to_tfrecord." + extra_help)


def define_saved_model(default=versions.SHIPPED_MODEL, extra_help=""):
  """--saved_model: a version folder, or a base holding numeric versions (newest used)."""
  flags.DEFINE_string("saved_model", default, "SavedModel: a version folder, or a base "
                      "folder holding numeric versions (the newest is used); default: the "
                      "shipped model." + extra_help)
