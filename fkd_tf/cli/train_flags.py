"""The training flags, generated from the TrainConfig fields: one source of settings.

Each field of `core.config.TrainConfig` is a flag of the same name, with the help in its
metadata; a field that is itself a dataclass (`augment`) contributes its fields as flags
without a prefix (`--flip_prob`, as the flagfiles have always written them). A field added
to the dataclass is a flag at once.
"""

import dataclasses

from absl import app, flags

from fkd_tf.cli import common_flags, flagfiles
from fkd_tf.core import config as config_lib

# Fields without a default in the dataclass, and their flags' defaults.
FLAG_DEFAULTS = {"tfrecord_dir": common_flags.DEFAULT_TFRECORD_DIR, "model_dir": None}
_DEFINE = {bool: flags.DEFINE_bool, int: flags.DEFINE_integer, float: flags.DEFINE_float,
           str: flags.DEFINE_string}


def _leaf_fields(cls):
  """(field) for each flag of `cls`: nested dataclass fields flattened, in field order."""
  for field in dataclasses.fields(cls):
    if dataclasses.is_dataclass(field.type):
      yield from _leaf_fields(field.type)
    else:
      yield field


def _type_of(field):
  # Annotations are types here; a module using `from __future__ import annotations`
  # would make them strings.
  return {t.__name__: t for t in _DEFINE}.get(field.type, field.type)


def define(flag_values=flags.FLAGS):
  """Defines a flag per TrainConfig setting on `flag_values`."""
  for field in _leaf_fields(config_lib.TrainConfig):
    default = FLAG_DEFAULTS.get(field.name, field.default)
    _DEFINE[_type_of(field)](field.name, default, field.metadata.get("help", ""),
                             flag_values=flag_values)


def _build(cls, flag_values, problems):
  """An instance of `cls` from the flags; a refused nested value adds to `problems`."""
  values = {}
  for field in dataclasses.fields(cls):
    if dataclasses.is_dataclass(field.type):
      values[field.name] = _build(field.type, flag_values, problems)
    else:
      values[field.name] = flag_values[field.name].value
  try:
    return cls(**values)
  except ValueError as e:  # AugmentConfig checks itself; go on to list the rest
    problems.append(str(e))
    return cls()  # its defaults, so that the remaining checks still run


def config(flag_values=flags.FLAGS):
  """The TrainConfig the parsed flags describe; raises app.UsageError listing every bad flag."""
  problems = []
  if not flag_values.model_dir:
    problems.append("--model_dir is required")
  train_config = _build(config_lib.TrainConfig, flag_values, problems)
  problems += config_lib.check(train_config)
  if problems:
    raise app.UsageError("bad flags:\n  " + "\n  ".join(problems))
  return train_config


def config_from_flagfile(flagfile, **overrides):
  """The TrainConfig `fkd_tf.train --flagfile=<flagfile> --name=value ...` would train.

  Args:
    flagfile: a recipe, e.g. configs/base.flags (nested flagfiles beside it are found).
    **overrides: flag values given after it, e.g. model_dir="runs/x".

  Raises:
    app.UsageError listing bad settings; flagfiles.FlagfileError for an unreadable file;
    flags.Error for an unknown flag.
  """
  flag_values = flags.FlagValues()
  define(flag_values)
  argv = ["train", *flagfiles.read(flagfile),
          *(f"--{name}={value}" for name, value in overrides.items())]
  flag_values(argv)
  return config(flag_values)
