"""Writes that never leave a partial file under its final name."""

import contextlib
import errno
import hashlib
import json
import os
import shutil
import sys
import tempfile


@contextlib.contextmanager
def atomic_path(path, suffix=".tmp"):
  """Yields a temporary path beside `path`; renames it onto `path` only on success.

  suffix: the temporary name's ending, for writers that insist on one (Keras weights
  files must end in .weights.h5).
  """
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=suffix, dir=folder)
  os.close(fd)
  umask = os.umask(0)
  os.umask(umask)
  os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would hide results from other users
  try:
    yield tmp
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def check_free_space(folder, needed_bytes, what):
  """Raises OSError(ENOSPC) naming `what` and `folder` when the disk holding `folder` has
  fewer than `needed_bytes` free.

  Failing before a large write costs one statfs call and says plainly what is missing,
  where running out halfway would fail deep inside the writer (h5py names no folder).
  """
  free_bytes = shutil.disk_usage(folder).free
  if free_bytes < needed_bytes:
    raise OSError(errno.ENOSPC, f"no room for {what} in {folder}: it needs about "
                  f"{needed_bytes / 2**20:.1f} MiB and {free_bytes / 2**20:.1f} MiB are free")


def write_text(path, text):
  with atomic_path(path) as tmp:
    with open(tmp, "w") as f:
      f.write(text)


def write_json(path, obj):
  write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def save_png(picture, path):
  """Saves a PIL image as PNG atomically."""
  with atomic_path(path) as tmp:
    picture.save(tmp, format="PNG")


def progress_bar(total, unit_name):
  """A Keras progress bar that redraws often on a terminal and rarely in a log file."""
  import keras  # pylint: disable=g-import-not-at-top  (keeps this module light)
  return keras.utils.Progbar(total, unit_name=unit_name,
                             interval=0.1 if sys.stdout.isatty() else 15.0)


def replace_path(new_path, path):
  """Puts the complete file or folder new_path at path; an old one there goes only after
  the new one is in place, so a reader finds the old or the new, never neither."""
  old = None
  if os.path.lexists(path):
    old = f"{new_path}.old"
    os.rename(path, old)
  os.rename(new_path, path)
  if old:
    if os.path.isdir(old) and not os.path.islink(old):
      shutil.rmtree(old)
    else:
      os.remove(old)


def sha256_of(path):
  """Hex sha256 of a file, read in 1 MiB chunks."""
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      digest.update(chunk)
  return digest.hexdigest()
