"""A finished run's settings and final metrics for TensorBoard's HParams tab.

`tensorboard --logdir runs` then lists every run as one row (its TrainConfig, flattened)
with its final val/test NME_io, FR@10 and AUC@10, so runs compare side by side.
"""

import os

import tensorflow as tf
from tensorboard.plugins.hparams import api as hp

LOG_SUBDIR = os.path.join("logs", "hparams")
# The summary keys of `evaluation.summarise` shown as metrics, and their names in the tab.
METRICS = {"nme_io": "NME_io", "failure_rate_10": "FR@10", "auc_10": "AUC@10"}
# Every run declares the same metrics (a cascade's too), so one experiment layout fits all
# runs of a log folder; a run without a split leaves those cells empty.
SPLITS = ("val", "test", "cascade_val", "cascade_test")


def flatten(values, prefix=""):
  """{"augment": {"flip_prob": 0.5}} -> {"augment.flip_prob": 0.5}."""
  flat = {}
  for name, value in values.items():
    if isinstance(value, dict):
      flat.update(flatten(value, f"{prefix}{name}."))
    else:
      flat[f"{prefix}{name}"] = value
  return flat


def metric_tag(split, name):
  return f"final/{split}_{name}"


def write(model_dir, config_values, results, step):
  """Writes the run's hparams and final metrics under <model_dir>/logs/hparams.

  Args:
    config_values: the TrainConfig as its config.json dict (nested).
    results: {split: evaluation summary}, as `train_lib.finish` returns.
    step: the step the metrics are logged at (the number of epochs).
  """
  hparams = flatten(config_values)
  metrics = [hp.Metric(metric_tag(split, name), display_name=f"{split} {shown}")
             for split in SPLITS for name, shown in METRICS.items()]
  writer = tf.summary.create_file_writer(os.path.join(model_dir, LOG_SUBDIR))
  with writer.as_default():
    hp.hparams_config(hparams=[hp.HParam(name) for name in sorted(hparams)], metrics=metrics)
    hp.hparams(hparams, trial_id=os.path.basename(os.path.normpath(model_dir)))
    for split in SPLITS:
      for name in METRICS:
        if split in results and name in results[split]:
          tf.summary.scalar(metric_tag(split, name), results[split][name], step=step)
  writer.close()
