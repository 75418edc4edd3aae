"""The settings of one training run, checked all at once before any work starts."""

import dataclasses

from fkd_tf.core import losses, models
from fkd_tf.core.augment import AugmentConfig
from fkd_tf.core.keypoints import NORMALISATIONS

STRATEGIES = ("default", "mirrored", "multi_worker")
SCHEDULES = ("constant", "cosine")
# Splits a run may train on; the test split never.
TRAINABLE_SPLITS = ("train", "val")
BIAS_INITS = ("zeros", "torch")
KEEPS = ("best", "last")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  tfrecord_dir: str
  model_dir: str
  model: str = "ppbnet"
  loss: str = "huber"
  huber_delta: float = 1.0
  normalisation: str = "original"
  epochs: int = 50
  batch_size: int = 64
  learning_rate: float = 1e-4
  lr_schedule: str = "constant"
  weight_decay: float = 0.0
  seed: int = 0
  augment: AugmentConfig = AugmentConfig()
  mixed_precision: bool = False  # bfloat16 on CPUs, float16 on GPUs
  jit_compile: bool = False
  steps_per_execution: int = 1
  strategy: str = "default"
  max_train_examples: int = 0  # 0: all; a positive number trains on a prefix (smoke runs)
  # Comma-separated splits trained on. "train,val" is all 3462 training images, as the
  # original trained; val is still evaluated each epoch, but is then no held-out figure.
  train_splits: str = "train"
  # "torch": ppbnet's biases drawn as PyTorch's default, U(+-1/sqrt(fan_in)); "zeros": Keras'.
  bias_init: str = "zeros"
  # Keras adds epsilon to sqrt(v) before the bias correction, PyTorch after it, so Keras'
  # e acts as PyTorch's e / sqrt(1 - beta2^t): for 1e-8, 3.2e-7 at step 1, 1.6e-8 at step
  # 500, 1.03e-8 at the original's last (2750). Either is far below sqrt(v) of almost
  # every weight, so 1e-8 here trains as the original's 1e-8 (PyTorch's default).
  adam_epsilon: float = 1e-7
  # Which epoch's network the run keeps: "best" on val NME_io, or the "last" (the original).
  keep: str = "best"
  evaluate_test: bool = True
  export: bool = True
  debug_nan_at_step: int = -1  # test hook: make the loss NaN at this step
  coarse_model_dir: str = ""  # a finished whole-image run: this run refines its keypoints
  # A finished run whose kept network starts this one (fine-tuning, a longer schedule);
  # a run resuming from its own backup continues from that instead.
  init_from: str = ""


def check(config):
  """Returns a list of problems, each naming its setting; empty when the config is sound."""
  problems = []
  if config.model not in models.MODELS:
    problems.append(f"--model={config.model!r}: choose one of {sorted(models.MODELS)}")
  if config.loss not in losses.LOSSES:
    problems.append(f"--loss={config.loss!r}: choose one of {sorted(losses.LOSSES)}")
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
