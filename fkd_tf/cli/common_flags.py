"""Flags that several commands share, defined in one place with one meaning.

Only the command-line modules (train, evaluate, export, predict, inspect, bench, tools/)
import this; library code takes plain arguments. Nothing here imports TensorFlow, so a
command's --help stays fast.
"""

import logging
import os

from absl import flags
from absl import logging as absl_logging

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


def define_saved_model(extra_help=" Default: the shipped model."):
  """--saved_model: a version folder, or a base holding numeric versions (newest used).

  Its default is None, read as the shipped model by `saved_model_or_shipped` (the shipped
  model's path comes from `serving.versions`, which imports TensorFlow).
  """
  flags.DEFINE_string("saved_model", None, "SavedModel: a version folder, or a base folder "
                      "holding numeric versions (the newest is used)." + extra_help)


def saved_model_or_shipped(path):
  """`path`, or the shipped model's folder when it is None or empty."""
  if path:
    return path
  from fkd_tf.serving import versions  # pylint: disable=g-import-not-at-top  (TensorFlow)
  return versions.SHIPPED_MODEL


def missing_default(flag_name, path, what):
  """One line for a default path that is not there: the flag, where it looked, the fix.

  Defaults such as data/tfrecords are relative to the current folder, so outside a
  checkout they point nowhere; say so instead of a traceback.
  """
  return (f"--{flag_name}={path}: no {what} there (looked in {os.path.abspath(path)}); "
          f"give --{flag_name}, or run from the checkout that holds it")


def export_name(saved_model):
  """A short name for an export, for default output folders in the current folder.

  The version number and an `export` folder say nothing: fkd_tf/shipped/fkd_default/2 ->
  fkd_default, runs/smoke/export/1 -> smoke, gs://b/m/3 -> m; None -> fkd_default.
  """
  parts = [p for p in (saved_model or "fkd_default").rstrip("/").split("/") if p]
  while len(parts) > 1 and (parts[-1].isdigit() or parts[-1] in ("export", ".")):
    parts.pop()
  return parts[-1] if parts else "model"


def path_error_line(flag_name, path, error):
  """`error: --<flag>=<path>: <error>`, plus where a relative local path was looked for."""
  where = ""
  if path and "://" not in path and not os.path.isabs(path):
    where = f" (looked in {os.path.abspath(path)})"
  return f"error: --{flag_name}={path}: {error}{where}"
