"""Finding and loading SavedModels: TF Serving's numeric version folders, the shipped model.

Every path that loads an export (evaluation, the Python API, predict, bench, inspect)
comes through `load_saved_model`, so "a version folder or a base of versions" means the
same everywhere.
"""

import os

import tensorflow as tf

# The model that ships inside the package (package data, so `pip install .` carries it;
# the repository's models/fkd_default is a link to it).
SHIPPED_MODEL = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                             "shipped", "fkd_default")

def versions(export_base):
  """The numeric version folders under export_base (TF Serving loads only those)."""
  if not tf.io.gfile.isdir(export_base):
    return []
  # gfile lists remote sub-folders with a trailing "/".
  names = (name.rstrip("/") for name in tf.io.gfile.listdir(export_base))
  return sorted(int(name) for name in names if name.isdigit())


def next_version(export_base):
  return max(versions(export_base), default=0) + 1


def _is_saved_model(path):
  return tf.io.gfile.exists(os.path.join(path, "saved_model.pb"))


def resolve_saved_model(path):
  """A SavedModel folder, or the newest complete numeric version under a base folder (an
  upload to gs:// that stopped early leaves a version without saved_model.pb)."""
  if _is_saved_model(path):
    return path
  found = [os.path.join(path, str(v)) for v in reversed(versions(path))]
  complete = next((version for version in found if _is_saved_model(version)), None)
  if complete is None:
    raise FileNotFoundError(f"no SavedModel at {path!r} (nor numeric versions under it)")
  return complete


def load_saved_model(path):
  """tf.saved_model.load of a version folder or of the newest version under a base."""
  return tf.saved_model.load(resolve_saved_model(path))
