r"""Trains a keypoint network: `python -m fkd_tf.train --flagfile=configs/base.flags`.

Parses flags, checks them all at once, and calls `train_lib.train_and_evaluate`, which
writes them into --model_dir once the folder is known to be this run's. Rerunning the
same command after a kill resumes from the last completed epoch.
"""

import sys

from absl import app, flags, logging

from fkd_tf.cli import command, common_flags, train_flags

FLAGS = flags.FLAGS


def define_flags():
  """Defines the training flags (one per TrainConfig setting); call once, where main lives."""
  train_flags.define()


def config_from_flags():
  """Builds the TrainConfig; raises app.UsageError listing every bad flag."""
  return train_flags.config()


def project_flags_text():
  """This command's flags with their values, one `--name=value` a line, for flags.txt.

  Only the flags of fkd_tf's modules: absl's flags_into_string() also dumps every
  library's (absl's own logging flags, TensorFlow's test and XLA flags), which say nothing
  about how the run was made and hide the flags that do.
  """
  own_modules = {FLAGS.find_module_defining_flag("model_dir")}  # "__main__" runs as a path
  lines = set()
  for module, module_flags in FLAGS.flags_by_module_dict().items():
    if module in own_modules or module.startswith("fkd_tf"):
      lines.update(flag.serialize() for flag in module_flags)
  return "".join(f"{line}\n" for line in sorted(lines) if line)


def _devices_found():
  """'CPU (no GPU found)' or 'CPU, 1 GPU (NVIDIA H200)': what TensorFlow will train on, in one line."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  gpus = tf.config.list_physical_devices("GPU")
  if not gpus:
    return "CPU (no GPU found)"
  names = sorted({tf.config.experimental.get_device_details(gpu).get("device_name", "GPU")
                  for gpu in gpus})
  return f"CPU, {len(gpus)} GPU ({', '.join(names)})"


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  config = config_from_flags()
  # pylint: disable=g-import-not-at-top  (TensorFlow after the flags: a fast --help)
  from fkd_tf.data import records
  from fkd_tf.serving import run_folder
  from fkd_tf.training import train_lib
  logging.info("devices: %s", _devices_found())
  try:
    train_lib.train_and_evaluate(config, flags_text=project_flags_text())
  except records.DatasetError as e:
    sys.exit(common_flags.path_error_line("tfrecord_dir", config.tfrecord_dir, e))
  except (run_folder.RunFolderError, FloatingPointError) as e:
    sys.exit(f"error: {e}")
  except OSError as e:  # a full disk or a vanished folder: one line, the file in it
    logging.debug("the failure in full", exc_info=True)  # shown with --verbosity=1
    sys.exit(f"error: {e}")


def run():
  """The `fkd-train` console command."""
  command.run(main, define_flags)


if __name__ == "__main__":
  run()
