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
  if not os.path.isdir(export_base):
    return []
  return sorted(int(d) for d in os.listdir(export_base) if d.isdigit())


def next_version(export_base):
  return max(versions(export_base), default=0) + 1


def resolve_saved_model(path):
  """A SavedModel folder, or the newest numeric version under a base folder."""
  if os.path.isfile(os.path.join(path, "saved_model.pb")):
    return path
  found = versions(path)
  if not found:
    raise FileNotFoundError(f"no SavedModel at {path!r} (nor numeric versions under it)")
  return os.path.join(path, str(found[-1]))


def load_saved_model(path):
  """tf.saved_model.load of a version folder or of the newest version under a base."""
  return tf.saved_model.load(resolve_saved_model(path))
