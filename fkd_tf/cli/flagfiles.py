"""Flagfiles that include each other by paths relative to themselves.

absl opens every `--flagfile=` relative to the current folder, so `configs/smoke.flags`
including `--flagfile=configs/base.flags` worked only from the checkout's root. Here an
included path is looked up beside the including file first, then in the folders above it
(a path written relative to the checkout, as before), then in the current folder. The one parser of flagfiles: the commands
expand them before absl parses, tools read recipes through it.
"""

import os

_FLAGFILE = ("--flagfile=", "-flagfile=")
_MAX_DEPTH = 8  # deeper is a file including itself


class FlagfileError(ValueError):
  """A flagfile that cannot be read: names the file and the flag that asked for it."""


def _included_path(path, including_file):
  """`path` beside `including_file`, else in the nearest folder above it that holds it
  (so `configs/base.flags`, written relative to the checkout, is found from anywhere),
  else as given (the current folder)."""
  if including_file and not os.path.isabs(path):
    folder = os.path.dirname(os.path.abspath(including_file))
    while True:
      candidate = os.path.join(folder, path)
      if os.path.exists(candidate):
        return candidate
      parent = os.path.dirname(folder)
      if parent == folder:
        break
      folder = parent
  return path


def read(path, including_file=None, depth=0):
  """The flags a flagfile holds, nested flagfiles expanded in place.

  Lines are stripped; blank lines and lines starting with `#` or `//` are skipped, as absl
  does.

  Args:
    path: the flagfile; relative paths are looked up beside `including_file` first.
    including_file: the flagfile that names `path`, or None for the command line.

  Returns:
    [str], one `--name=value` (or `--name`, `--noname`) per entry, in file order.

  Raises:
    FlagfileError naming the file (and the including file) when it cannot be read.
  """
  path = _included_path(path, including_file)
  where = f" (included by {including_file})" if including_file else ""
  if depth > _MAX_DEPTH:
    raise FlagfileError(f"--flagfile={path}{where}: flagfiles nest deeper than "
                        f"{_MAX_DEPTH} (a file including itself?)")
  try:
    with open(path) as f:
      lines = [line.strip() for line in f]
  except OSError as e:
    raise FlagfileError(f"--flagfile={path}{where}: cannot read it ({e.strerror}; "
                        f"looked in {os.path.abspath(path)})") from None
  flags = []
  for line in lines:
    if not line or line.startswith(("#", "//")):
      continue
    if line.startswith(_FLAGFILE):
      flags += read(line.split("=", 1)[1], path, depth + 1)
    else:
      flags.append(line)
  return flags


def expand_argv(argv):
  """argv with each `--flagfile=PATH` replaced by the flags it holds (see `read`).

  Arguments after a bare `--` are positional and kept as they are.
  """
  expanded = []
  for i, arg in enumerate(argv):
    if arg == "--":
      return expanded + list(argv[i:])
    if i > 0 and arg.startswith(_FLAGFILE):
      expanded += read(arg.split("=", 1)[1])
    else:
      expanded.append(arg)
  return expanded
