"""Finding and loading SavedModels: TF Serving's numeric version folders, the shipped model.

Every path that loads an export (evaluation, the Python API, predict, bench, inspect)
comes through `load_saved_model`, so "a version folder or a base of versions" means the
same everywhere.
"""

import errno
import os
import uuid

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


# os.rename of a folder onto a version another export already holds fails with one of
# these (a non-empty folder: ENOTEMPTY, or EEXIST on some systems; a file: ENOTDIR).
_TAKEN = (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR)
# Enough for any number of exports racing into one base; a loop that never ends is worse.
_MAX_TRIES = 1000


def commit_version(staged, export_base):
  """Renames the complete SavedModel folder `staged` (inside export_base, on a local disk)
  to the next free version number; returns the version's path.

  The rename is the allocation: of two exports that both counted the same next number,
  one rename succeeds and the other finds the folder taken and tries the number after, so
  neither export is lost and no version holds two of them.
  """
  version = next_version(export_base)
  for _ in range(_MAX_TRIES):
    final = os.path.join(export_base, str(version))
    try:
      os.rename(staged, final)
      return final
    except OSError as e:
      if e.errno not in _TAKEN:
        raise
    version = max(version + 1, next_version(export_base))
  raise OSError(f"no free version number under {export_base} after {_MAX_TRIES} tries")


def claim_remote_version(export_base):
  """The path of a new, empty version folder under a remote export_base (gs://, ram://),
  claimed for this export; returns it.

  Object stores have no atomic folder rename or exclusive create: each export writes a
  claim file named for itself into the number it counted, then lists the folder; when any
  other file is there, another export got the number first (or both claimed it at once:
  then both move on), and this one removes its claim and tries the next number. The claim
  file stays in the version (hidden; TF Serving and loaders ignore it).
  """
  claim_name = f".claim-{uuid.uuid4().hex}"
  version = next_version(export_base)
  for _ in range(_MAX_TRIES):
    final = f"{export_base.rstrip('/')}/{version}"
    if not tf.io.gfile.exists(final):
      tf.io.gfile.makedirs(final)
      claim = f"{final}/{claim_name}"
      with tf.io.gfile.GFile(claim, "w") as f:
        f.write(claim_name)
      if [name for name in tf.io.gfile.listdir(final) if name != claim_name] == []:
        return final
      tf.io.gfile.remove(claim)
    version = max(version + 1, next_version(export_base))
  raise OSError(f"no free version number under {export_base} after {_MAX_TRIES} tries")


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
