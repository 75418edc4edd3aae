"""The settings of one training run, checked all at once before any work starts."""

import dataclasses

from fkd_tf.core.augment_config import AugmentConfig
from fkd_tf.core.keypoints import NORMALISATIONS

# The names the registries hold (core.models.MODELS, core.losses.LOSSES,
# core.pretrained.SOURCES; tests/test_config.py checks they agree), known here without
# importing Keras, so that `fkd-train --help` and the flag checks need no TensorFlow.
MODEL_NAMES = ("fknet", "facemesh_160", "facemesh_192", "mobilenet_050", "mobilenet_075",
               "ppbnet", "tiny")
LOSS_NAMES = ("huber", "l1", "wing")
PRETRAINED_NAMES = ("facemesh",)

STRATEGIES = ("default", "mirrored", "multi_worker")
SCHEDULES = ("constant", "cosine")
# Splits a run may train on; the test split never.
TRAINABLE_SPLITS = ("train", "val")
BIAS_INITS = ("zeros", "torch")
KEEPS = ("best", "last")


def _setting(default=dataclasses.MISSING, help_text=""):
  """A field with its flag's help: `fkd_tf.train` defines its flags from these."""
  return dataclasses.field(default=default, metadata={"help": help_text})


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """A run's settings; each field's metadata["help"] is its flag's help (`--<name>`)."""
  tfrecord_dir: str = _setting(help_text="Folder of shards and dataset_info.json written "
                               "by tools.convert_to_tfrecord.")
  model_dir: str = _setting(help_text="Run folder: checkpoints, logs, reports, export.")
  model: str = _setting("ppbnet", f"Network: one of {list(MODEL_NAMES)}.")
  loss: str = _setting("huber", f"Loss: one of {list(LOSS_NAMES)}.")
  huber_delta: float = _setting(1.0, "Huber delta (SmoothL1 beta).")
  normalisation: str = _setting("original", "Keypoint normalisation: one of "
                                f"{sorted(NORMALISATIONS)}.")
  epochs: int = _setting(50, "Passes over the training split.")
  batch_size: int = _setting(64, "Global batch size.")
  learning_rate: float = _setting(1e-4, "Peak learning rate.")
  lr_schedule: str = _setting("constant", f"Learning-rate schedule: one of {SCHEDULES}.")
  weight_decay: float = _setting(0.0, "AdamW decoupled weight decay; 0 keeps plain Adam.")
  seed: int = _setting(0, "Seed of initialisation, shuffling and augmentation.")
  augment: AugmentConfig = _setting(AugmentConfig(), "Framing and augmentation (flags "
                                    "named after AugmentConfig's fields).")
  mixed_precision: bool = _setting(False, "Compute in bfloat16 on CPUs, float16 on GPUs "
                                   "(variables and the output layer stay float32).")
  jit_compile: bool = _setting(False, "XLA-compile the network's forward and backward pass "
                               "(the augmentation's warp has no XLA kernel).")
  steps_per_execution: int = _setting(1, "Train steps per tf.function call.")
  strategy: str = _setting("default", f"tf.distribute strategy: one of {STRATEGIES}.")
  max_train_examples: int = _setting(0, "Train on only this many faces (0: all); for "
                                     "smoke runs.")
  train_splits: str = _setting("train", "Comma-separated splits to train on: 'train', or "
                               "'train,val' (all 3462 training images, as the original; "
                               "val is then still evaluated but not held out, and needs "
                               "--keep=last).")
  bias_init: str = _setting("zeros", f"Initial biases, one of {BIAS_INITS}: 'torch' draws "
                            "ppbnet's as PyTorch's default U(+-1/sqrt(fan_in)).")
  # Keras adds epsilon to sqrt(v) before the bias correction, PyTorch after it, so Keras'
  # e acts as PyTorch's e / sqrt(1 - beta2^t): for 1e-8, 3.2e-7 at step 1, 1.6e-8 at step
  # 500, 1.03e-8 at the original's last (2750). Either is far below sqrt(v) of almost
  # every weight, so 1e-8 here trains as the original's 1e-8 (PyTorch's default).
  adam_epsilon: float = _setting(1e-7, "Adam's epsilon. Keras adds it before the bias "
                                 "correction, PyTorch after, so 1e-8 here acts as "
                                 "PyTorch's 1.6e-8 at step 500 and 1.03e-8 at step 2750 "
                                 "(the original: 1e-8).")
  keep: str = _setting("best", f"Which epoch's network the run keeps, one of {KEEPS}: the "
                       "best on val NME_io, or the last (the original).")
  evaluate_test: bool = _setting(True, "Evaluate the chosen model on the test split at the "
                                 "end.")
  export: bool = _setting(True, "Export a SavedModel at the end.")
  debug_nan_at_step: int = _setting(-1, "Fault injection for tests: the loss of this step "
                                    "becomes NaN.")
  coarse_model_dir: str = _setting("", "A finished whole-image run; with --region=keypoints "
                                   "this run trains the refining stage and exports the two "
                                   "as one cascade SavedModel.")
  init_from: str = _setting("", "A finished run (same --model and --normalisation) whose "
                            "kept network starts this run instead of a fresh "
                            "initialisation: fine-tuning, or a longer schedule. A rerun "
                            "that resumes from its backup ignores it.")
  pretrained: str = _setting("", "Pretrained weights a new run starts from, one of "
                             f"{list(PRETRAINED_NAMES)}, its head fitted by ridge "
                             "regression first; '' trains from scratch.")
  freeze_until: str = _setting("", "With --pretrained: layers up to and including this one "
                               "are not trained.")

def check(config):
  """Returns a list of problems, each naming its setting; empty when the config is sound."""
  problems = []
  if config.model not in MODEL_NAMES:
    problems.append(f"--model={config.model!r}: choose one of {sorted(MODEL_NAMES)}")
  if config.loss not in LOSS_NAMES:
    problems.append(f"--loss={config.loss!r}: choose one of {sorted(LOSS_NAMES)}")
  if config.normalisation not in NORMALISATIONS:
    problems.append(f"--normalisation={config.normalisation!r}: choose one of "
                    f"{sorted(NORMALISATIONS)}")
  if config.lr_schedule not in SCHEDULES:
    problems.append(f"--lr_schedule={config.lr_schedule!r}: choose one of {SCHEDULES}")
  if config.strategy not in STRATEGIES:
    problems.append(f"--strategy={config.strategy!r}: choose one of {STRATEGIES}")
  for name in ("epochs", "batch_size", "steps_per_execution"):
    if getattr(config, name) < 1:
      problems.append(f"--{name}={getattr(config, name)} must be >= 1")
  for name in ("learning_rate", "huber_delta"):
    if not getattr(config, name) > 0:
      problems.append(f"--{name}={getattr(config, name)} must be > 0")
  if config.pretrained and config.pretrained not in PRETRAINED_NAMES:
    problems.append(f"--pretrained={config.pretrained!r}: choose one of "
                    f"{sorted(PRETRAINED_NAMES)} or ''")
  if config.freeze_until and not config.pretrained:
    problems.append("--freeze_until needs --pretrained (a network trained from scratch "
                    "learns every layer)")
  if config.weight_decay < 0:
    problems.append(f"--weight_decay={config.weight_decay} must be >= 0")
  if config.coarse_model_dir and config.augment.region != "keypoints":
    problems.append("--coarse_model_dir needs --region=keypoints (a refining stage)")
  if config.max_train_examples < 0:
    problems.append(f"--max_train_examples={config.max_train_examples} must be >= 0")
  splits = train_splits_of(config)
  if not splits or any(s not in TRAINABLE_SPLITS for s in splits) or len(set(splits)) < len(
      splits):
    problems.append(f"--train_splits={config.train_splits!r}: name each of "
                    f"{TRAINABLE_SPLITS} at most once, comma-separated")
  elif "val" in splits and config.keep == "best":
    problems.append("--keep=best chooses the epoch on val, which --train_splits="
                    f"{config.train_splits} trains on: use --keep=last")
  if config.bias_init not in BIAS_INITS:
    problems.append(f"--bias_init={config.bias_init!r}: choose one of {BIAS_INITS}")
  elif config.bias_init == "torch" and config.model != "ppbnet":
    problems.append("--bias_init=torch is implemented for --model=ppbnet only")
  if not config.adam_epsilon > 0:
    problems.append(f"--adam_epsilon={config.adam_epsilon} must be > 0")
  if config.keep not in KEEPS:
    problems.append(f"--keep={config.keep!r}: choose one of {KEEPS}")
  return problems


def train_splits_of(config):
  """The splits a run trains on, in order: ["train"] or ["train", "val"]."""
  return [s.strip() for s in config.train_splits.split(",") if s.strip()]


def from_json(values):
  """A TrainConfig from its config.json dict (as train_lib writes it)."""
  values = dict(values)
  known = {f.name for f in dataclasses.fields(AugmentConfig)}
  augment = AugmentConfig(**{k: v for k, v in values.pop("augment").items() if k in known})
  known = {f.name for f in dataclasses.fields(TrainConfig)}
  return TrainConfig(augment=augment, **{k: v for k, v in values.items() if k in known})
