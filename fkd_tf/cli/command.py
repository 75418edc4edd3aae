"""How every command starts: its own flags in --help, one-line errors, flagfiles found.

absl's `app.run` prints the key flags of `sys.modules['__main__']`, which for a console
script is pip's wrapper (no flag at all) and for `python -m` the command alone (not the
flags it shares through `fkd_tf.cli.common_flags`); its --help exits 1, and every flag
error ends in "Pass --helpshort or --helpfull", or, for a `UsageError` from `main`, in the
whole help before the error. `run` gives every command the same start instead:

  --help, -h, --helpshort: the command's docstring and the flags of fkd_tf's modules
      (the command's own and the shared ones), exit 0. --helpfull adds every library's.
  a bad flag, or an app.UsageError from main: `error: <what>` on stderr, exit 1.
  --flagfile=PATH: nested flagfiles found beside the including file (`flagfiles`).

Nothing here imports TensorFlow, so --help is fast when the command's module defers its
TensorFlow imports to `main`.
"""

import sys

from absl import app, flags

from fkd_tf.cli import flagfiles

FLAGS = flags.FLAGS
_HELP = ("--help", "-help", "-h", "-?", "--helpshort", "-helpshort")
_HELPFULL = ("--helpfull", "-helpfull")
# Modules whose flags are the project's: the package, and tools/ (a checkout's `tools`,
# the installed `fkd_tf_tools`).
_PROJECT = ("fkd_tf", "tools", "fkd_tf_tools")


def _is_project_module(module_name, main_name):
  return module_name == main_name or module_name.split(".")[0] in _PROJECT


def project_flags(flag_values=FLAGS):
  """The flags defined by fkd_tf's modules (and by the module run as __main__)."""
  main_name = sys.argv[0]  # absl's name for flags defined in __main__
  found = {}
  for module, module_flags in flag_values.flags_by_module_dict().items():
    if _is_project_module(module, main_name):
      found.update((flag.name, flag) for flag in module_flags)
  return [found[name] for name in sorted(found)]


def help_text(doc, flag_values=FLAGS):
  """The command's docstring, then its flags (absl's format)."""
  for flag in project_flags(flag_values):
    # Key flags of the name absl looks under for the main module, so that absl's own
    # --helpshort (and anything calling main_module_help) lists them too.
    flag_values.register_key_flag_for_module(sys.argv[0], flag)
  return f"{(doc or '').rstrip()}\n\nflags:\n{flag_values.main_module_help()}\n"


def _parse(doc):
  """An absl flags_parser: help and errors as this module's docstring says."""
  def parse(argv):
    head = argv[:argv.index("--")] if "--" in argv else argv
    if any(arg in _HELP for arg in head[1:]):
      sys.stdout.write(help_text(doc))
      sys.exit(0)
    if any(arg in _HELPFULL for arg in head[1:]):
      sys.stdout.write(help_text(doc) + "\nall flags:\n" + FLAGS.get_help() + "\n")
      sys.exit(0)
    try:
      return FLAGS(flagfiles.expand_argv(argv))
    except flagfiles.FlagfileError as e:
      sys.exit(f"error: {e}")
    except flags.Error as e:
      sys.exit(f"error: {_one_line(e)} (--help lists the flags)")
  return parse


def _one_line(error):
  return " ".join(str(error).split())


def _one_line_usage_errors(main):
  def wrapped(argv):
    try:
      return main(argv)
    except app.UsageError as e:
      # A list of bad flags keeps its lines; no help text before it.
      sys.exit(f"error: {e}")
  return wrapped


def run(main, define_flags, doc=None):
  """Defines the command's flags, parses argv, runs main(argv) as `app.run` does.

  Args:
    main: the command's main(argv).
    define_flags: defines the command's flags on absl's FLAGS; called once.
    doc: the usage text --help prints first (default: main's module docstring).
  """
  define_flags()
  if doc is None:
    doc = sys.modules[main.__module__].__doc__
  app.run(_one_line_usage_errors(main), flags_parser=_parse(doc))
