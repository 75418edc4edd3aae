r"""Trains a keypoint network: `python -m fkd_tf.train --flagfile=configs/base.flags`.

Parses flags, checks them all at once, and calls `train_lib.train_and_evaluate`, which
writes them into --model_dir once the folder is known to be this run's. Rerunning the
same command after a kill resumes from the last completed epoch.
"""

import dataclasses
import sys

from absl import app, flags, logging

from fkd_tf.cli import common_flags
from fkd_tf.serving import run_folder
from fkd_tf.core import augment, losses, models
from fkd_tf.core import config as config_lib
from fkd_tf.core.keypoints import NORMALISATIONS
from fkd_tf.data import records
from fkd_tf.training import train_lib

FLAGS = flags.FLAGS

_AUGMENT_HELP = {
    "rescale_size": "Shorter side of the image after rescaling, before the 90x90 crop "
                    "(the original: 100).",
    "random_crop": "Place the training crop uniformly along the slack (the original's "
                   "RandomCrop); evaluation always centres it.",
    "original_rounding": "Frame in whole pixels as the original's numpy code did: int() of "
                         "each rescaled side, integer crop offsets (training: 0 .. slack-1, "
                         "evaluation and serving: slack // 2).",
    "max_rotation_deg": "Random rotation range, degrees, +-.",
    "min_scale": "Smallest random zoom of the net frame (1: none).",
    "max_scale": "Largest random zoom of the net frame (1: none).",
    "max_shift": "Random translation range, net pixels, +- on each axis.",
    "flip_prob": "Probability of a horizontal flip (with the 68-point left/right swap).",
    "brightness": "Random brightness change range, +- (images in [0, 1]).",
    "contrast": "Random contrast factor range, 1 +- this.",
    "gamma": "Random gamma exponent range, exp(+- this).",
    "blur_prob": "Probability of a Gaussian blur.",
    "blur_sigma": "Sigma of that blur, net pixels.",
    "erase_prob": "Probability of erasing one random rectangle.",
    "erase_max_fraction": "Largest erased side, as a fraction of the 90 px frame.",
    "region": "What is framed: 'image' (the whole image, the original) or 'keypoints' "
              "(a square around the keypoints: a cascade's refining stage).",
    "region_margin": "Side of the 'keypoints' square over the keypoint box's larger side.",
}


def define_flags():
  """Defines the training flags; call once, where main lives."""
  defaults = config_lib.TrainConfig(tfrecord_dir="", model_dir="")
  common_flags.define_tfrecord_dir()
  flags.DEFINE_string("model_dir", None, "Run folder: checkpoints, logs, reports, export.")
  flags.DEFINE_string("model", defaults.model, f"Network: one of {sorted(models.MODELS)}.")
  flags.DEFINE_string("loss", defaults.loss, f"Loss: one of {sorted(losses.LOSSES)}.")
  flags.DEFINE_float("huber_delta", defaults.huber_delta, "Huber delta (SmoothL1 beta).")
  flags.DEFINE_string("normalisation", defaults.normalisation,
                      f"Keypoint normalisation: one of {sorted(NORMALISATIONS)}.")
  flags.DEFINE_integer("epochs", defaults.epochs, "Passes over the training split.")
  flags.DEFINE_integer("batch_size", defaults.batch_size, "Global batch size.")
  flags.DEFINE_float("learning_rate", defaults.learning_rate, "Peak learning rate.")
  flags.DEFINE_string("lr_schedule", defaults.lr_schedule,
                      f"Learning-rate schedule: one of {config_lib.SCHEDULES}.")
  flags.DEFINE_float("weight_decay", defaults.weight_decay, "AdamW decoupled weight decay; "
                     "0 keeps plain Adam.")
  flags.DEFINE_integer("seed", defaults.seed, "Seed of initialisation, shuffling and "
                       "augmentation.")
  flags.DEFINE_bool("mixed_precision", defaults.mixed_precision, "Compute in bfloat16 on "
                    "CPUs, float16 on GPUs (variables and the output layer stay float32).")
  flags.DEFINE_bool("jit_compile", defaults.jit_compile, "XLA-compile the network's forward "
                    "and backward pass (the augmentation's warp has no XLA kernel).")
  flags.DEFINE_integer("steps_per_execution", defaults.steps_per_execution,
                       "Train steps per tf.function call.")
  flags.DEFINE_string("strategy", defaults.strategy,
                      f"tf.distribute strategy: one of {config_lib.STRATEGIES}.")
  flags.DEFINE_integer("max_train_examples", defaults.max_train_examples,
                       "Train on only this many faces (0: all); for smoke runs.")
  flags.DEFINE_string("train_splits", defaults.train_splits,
                      "Comma-separated splits to train on: 'train', or 'train,val' (all "
                      "3462 training images, as the original; val is then still evaluated "
                      "but not held out, and needs --keep=last).")
  flags.DEFINE_string("bias_init", defaults.bias_init,
                      f"Initial biases, one of {config_lib.BIAS_INITS}: 'torch' draws "
                      "ppbnet's as PyTorch's default U(+-1/sqrt(fan_in)).")
  flags.DEFINE_float("adam_epsilon", defaults.adam_epsilon,
                     "Adam's epsilon. Keras adds it before the bias correction, PyTorch "
                     "after, so 1e-8 here acts as PyTorch's 1.6e-8 at step 500 and 1.03e-8 "
                     "at step 2750 (the original: 1e-8).")
  flags.DEFINE_string("keep", defaults.keep,
                      f"Which epoch's network the run keeps, one of {config_lib.KEEPS}: the "
                      "best on val NME_io, or the last (the original).")
  flags.DEFINE_bool("evaluate_test", defaults.evaluate_test,
                    "Evaluate the chosen model on the test split at the end.")
  flags.DEFINE_bool("export", defaults.export, "Export a SavedModel at the end.")
  flags.DEFINE_string("coarse_model_dir", defaults.coarse_model_dir,
                      "A finished whole-image run; with --region=keypoints this run trains "
                      "the refining stage and exports the two as one cascade SavedModel.")
  flags.DEFINE_string("init_from", defaults.init_from,
                      "A finished run (same --model and --normalisation) whose kept network "
                      "starts this run instead of a fresh initialisation: fine-tuning, or a "
                      "longer schedule. A rerun that resumes from its backup ignores it.")
  flags.DEFINE_integer("debug_nan_at_step", defaults.debug_nan_at_step,
                       "Fault injection for tests: the loss of this step becomes NaN.")
  for field in dataclasses.fields(augment.AugmentConfig):
    define = {bool: flags.DEFINE_bool, "bool": flags.DEFINE_bool, str: flags.DEFINE_string,
              "str": flags.DEFINE_string}.get(field.type, flags.DEFINE_float)
    define(field.name, field.default, _AUGMENT_HELP[field.name])


def config_from_flags():
  """Builds the TrainConfig; raises app.UsageError listing every bad flag."""
  problems = []
  if not FLAGS.model_dir:
    problems.append("--model_dir is required")
  augment_values = {f.name: FLAGS[f.name].value for f in dataclasses.fields(
      augment.AugmentConfig)}
  try:
    augment_config = augment.AugmentConfig(**augment_values)
  except ValueError as e:
    problems.append(str(e))
    augment_config = augment.AugmentConfig()
  fields = {f.name for f in dataclasses.fields(config_lib.TrainConfig)} - {"augment"}
  config = config_lib.TrainConfig(augment=augment_config,
                                  **{name: FLAGS[name].value for name in fields})
  problems += config_lib.check(config)
  if problems:
    raise app.UsageError("bad flags:\n  " + "\n  ".join(problems))
  return config


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


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  config = config_from_flags()
  try:
    train_lib.train_and_evaluate(config, flags_text=project_flags_text())
  except (records.DatasetError, run_folder.RunFolderError, FloatingPointError) as e:
    sys.exit(f"error: {e}")
  except OSError as e:  # a full disk or a vanished folder: one line, the file in it
    logging.debug("the failure in full", exc_info=True)  # shown with --verbosity=1
    sys.exit(f"error: {e}")


def run():
  """The `fkd-train` console command."""
  define_flags()
  app.run(main)


if __name__ == "__main__":
  run()
