"""Writes that never leave a partial file under its final name, on a local disk or on any
file system TensorFlow serves (gs://, s3://, hdfs://, ram://).

Run folders and exports may live on a cluster's object store: every writer that needs a
local file (h5py, PIL, open()) writes one here, and `atomic_path` moves it into place with
tf.io.gfile when the destination is remote.
"""

import contextlib
import errno
import hashlib
import json
import os
import posixpath
import shutil
import sys
import tempfile


def is_remote(path):
  """True for a URL-style path (gs://bucket/run, ram://run), which os and open() cannot
  reach and tf.io.gfile can."""
  return "://" in os.fspath(path)


def gfile():
  """tf.io.gfile, imported on first use (keeps this module light for local-only tools)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return tf.io.gfile


def isfile(path):
  """os.path.isfile for local and remote paths alike."""
  if not is_remote(path):
    return os.path.isfile(path)
  return gfile().exists(path) and not gfile().isdir(path)


def read_bytes(path):
  """A whole file's bytes, from a local or a remote path."""
  if is_remote(path):
    with gfile().GFile(path, "rb") as f:
      return f.read()
  with open(path, "rb") as f:
    return f.read()


def makedirs(folder):
  """os.makedirs(exist_ok=True) for local and remote folders alike."""
  if is_remote(folder):
    gfile().makedirs(folder)
  else:
    os.makedirs(folder, exist_ok=True)


@contextlib.contextmanager
def atomic_path(path, suffix=".tmp"):
  """Yields a temporary path beside `path`; renames it onto `path` only on success.

  suffix: the temporary name's ending, for writers that insist on one (Keras weights
  files must end in .weights.h5).

  A remote `path` gets a local temporary file; when it is complete it is copied beside
  `path` under a hidden name and renamed onto it, so readers never see part of it.
  """
  if is_remote(path):
    with _remote_atomic_path(path, suffix) as tmp:
      yield tmp
    return
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


@contextlib.contextmanager
def _remote_atomic_path(path, suffix):
  fd, tmp = tempfile.mkstemp(prefix="fkd_tf.", suffix=suffix)
  os.close(fd)
  folder, name = posixpath.split(path)
  staged = posixpath.join(folder, f".{name}.{os.getpid()}{suffix}")
  try:
    yield tmp
    gfile().makedirs(folder)
    gfile().copy(tmp, staged, overwrite=True)
    gfile().rename(staged, path, overwrite=True)
  finally:
    os.remove(tmp)
    if gfile().exists(staged):
      gfile().remove(staged)


def check_free_space(folder, needed_bytes, what):
  """Raises OSError(ENOSPC) naming `what` and `folder` when the disk holding `folder` has
  fewer than `needed_bytes` free.

  Failing before a large write costs one statfs call and says plainly what is missing,
  where running out halfway would fail deep inside the writer (h5py names no folder).
  Object stores have no free space to ask for: a remote folder always passes.
  """
  if is_remote(folder):
    return
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


class PlainProgress:
  """A progress bar for a log file or a pipe: a plain `k/N unit  Ts` line now and then,
  no terminal codes (Keras' Progbar writes its colours and bold even there)."""

  def __init__(self, total, unit_name, interval=15.0, stream=None):
    import time  # pylint: disable=g-import-not-at-top
    self._clock = time.monotonic
    self.total, self.unit_name, self.interval = total, unit_name, interval
    self.current, self._start, self._last = 0, self._clock(), None
    self._stream = stream

  def add(self, count, values=None):
    del values
    self.update(self.current + count)

  def update(self, current, values=None, finalize=None):
    del values
    self.current = current
    done = self.total is not None and current >= self.total
    now = self._clock()
    if not (done or finalize or self._last is None or now - self._last >= self.interval):
      return
    self._last = now
    total = self.total if self.total is not None else "?"
    units = self.unit_name + ("es" if self.unit_name.endswith(("s", "ch", "sh", "x")) else "s")
    print(f"{current}/{total} {units}  {now - self._start:.0f}s",
          file=self._stream or sys.stdout, flush=True)


def progress_bar(total, unit_name):
  """A Keras progress bar on a terminal; plain lines every 15 s in a log file or pipe."""
  if not sys.stdout.isatty():
    return PlainProgress(total, unit_name)
  import keras  # pylint: disable=g-import-not-at-top  (keeps this module light)
  return keras.utils.Progbar(total, unit_name=unit_name, interval=0.1)


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
