"""A finished run's settings and final metrics for TensorBoard's HParams tab.

`tensorboard --logdir runs` then lists every run as one row (its TrainConfig, flattened)
with its final val/test NME_io, FR@10 and AUC@10 in %, as every report prints them, so
runs compare side by side. The tab ticks the first columns of the experiment's hparam
list by default, so the settings that tell runs apart come first (`FIRST`), then the
rest by name.
"""

import os
import time

import tensorflow as tf
from tensorboard.plugins.hparams import api as hp

LOG_SUBDIR = os.path.join("logs", "hparams")
# The summary keys of `evaluation.summarise` shown as metrics: (name in the tab, factor).
# NME_io and FR@10 are fractions in the summaries and % in every report; AUC@10 is a
# fraction everywhere.
METRICS = {"nme_io": ("NME_io %", 100.0), "failure_rate_10": ("FR@10 %", 100.0),
           "auc_10": ("AUC@10", 1.0)}
# Every run declares the same metrics (a cascade's too), so one experiment layout fits all
# runs of a log folder; a run without a split leaves those cells empty.
SPLITS = ("val", "test", "cascade_val", "cascade_test")
# The settings that tell runs apart, shown first (flattened names); the rest follow.
FIRST = ("model", "loss", "epochs", "learning_rate", "lr_schedule", "batch_size",
         "normalisation", "weight_decay", "augment.region", "augment.rescale_size",
         "train_splits", "keep", "init_from", "pretrained", "seed")


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


def ordered_names(hparams):
  """The hparam names, those in FIRST first (in its order), then the others by name."""
  first = [name for name in FIRST if name in hparams]
  return first + sorted(set(hparams) - set(first))


def trial_id(model_dir, start_time):
  """Unique per run and attempt: the run folder's full path and the write time (two
  `.../smoke` runs in different folders, or a rerun of one, are different rows)."""
  path = model_dir if "://" in model_dir else os.path.abspath(model_dir)
  stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(start_time))
  return f"{path.rstrip('/')}@{stamp}"


def write(model_dir, config_values, results, step, start_time=None):
  """Writes the run's hparams and final metrics under <model_dir>/logs/hparams.

  Args:
    model_dir: the run folder.
    config_values: the TrainConfig as its config.json dict (nested).
    results: {split: evaluation summary}, as `train_lib.finish` returns.
    step: the step the metrics are logged at (the number of epochs).
    start_time: seconds since the epoch for the trial id (default: now).
  """
  hparams = flatten(config_values)
  names = ordered_names(hparams)
  metrics = [hp.Metric(metric_tag(split, name), display_name=f"{split} {shown}")
             for split in SPLITS for name, (shown, _) in METRICS.items()]
  writer = tf.summary.create_file_writer(os.path.join(model_dir, LOG_SUBDIR))
  with writer.as_default():
    hp.hparams_config(hparams=[hp.HParam(name) for name in names], metrics=metrics)
    hp.hparams({name: hparams[name] for name in names},
               trial_id=trial_id(model_dir, time.time() if start_time is None else start_time))
    for split in SPLITS:
      for name, (_, factor) in METRICS.items():
        if split in results and name in results[split]:
          tf.summary.scalar(metric_tag(split, name), factor * results[split][name],
                            step=step)
  writer.close()
