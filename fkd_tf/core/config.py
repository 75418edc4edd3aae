"""The settings of one training run, checked all at once before any work starts."""

import dataclasses

from fkd_tf.core import losses, models
from fkd_tf.core.augment import AugmentConfig
from fkd_tf.core.keypoints import NORMALISATIONS

STRATEGIES = ("default", "mirrored", "multi_worker")
SCHEDULES = ("constant", "cosine")


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
  evaluate_test: bool = True
  export: bool = True
  debug_nan_at_step: int = -1  # test hook: make the loss NaN at this step
  coarse_model_dir: str = ""  # a finished whole-image run: this run refines its keypoints


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
  return problems


def from_json(values):
  """A TrainConfig from its config.json dict (as train_lib writes it)."""
  values = dict(values)
  known = {f.name for f in dataclasses.fields(AugmentConfig)}
  augment = AugmentConfig(**{k: v for k, v in values.pop("augment").items() if k in known})
  known = {f.name for f in dataclasses.fields(TrainConfig)}
  return TrainConfig(augment=augment, **{k: v for k, v in values.items() if k in known})
