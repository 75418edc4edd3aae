"""The HParams record of a run: written as TensorBoard's plugin data, read back here."""

import dataclasses
import glob
import json
import os

import pytest
import tensorflow as tf
from tensorboard.plugins.hparams import plugin_data_pb2

from fkd_tf.core import config as config_lib
from fkd_tf.core.augment import AugmentConfig
from fkd_tf.training import hparams_log


def read_hparams_events(model_dir):
  """(session hparams {name: value}, experiment metric tags, {scalar tag: value})."""
  hparams, metric_tags, scalars, _ = read_experiment(model_dir)
  return hparams, metric_tags, scalars


def read_experiment(model_dir):
  """read_hparams_events' three, and {"hparam_order", "metric_names", "trial_id"}."""
  files = glob.glob(os.path.join(model_dir, "logs", "hparams", "events.out.tfevents.*"))
  assert len(files) == 1
  hparams, metric_tags, scalars, extra = {}, [], {}, {}
  for event in tf.compat.v1.train.summary_iterator(files[0]):
    for value in event.summary.value:
      if value.metadata.plugin_data.plugin_name == "hparams":
        data = plugin_data_pb2.HParamsPluginData.FromString(
            value.metadata.plugin_data.content)
        if data.HasField("session_start_info"):
          for name, field in data.session_start_info.hparams.items():
            hparams[name] = getattr(field, field.WhichOneof("kind"))
          extra["trial_id"] = data.session_start_info.group_name
        if data.HasField("experiment"):
          metric_tags = [m.name.tag for m in data.experiment.metric_infos]
          extra["metric_names"] = [m.display_name for m in data.experiment.metric_infos]
          extra["hparam_order"] = [h.name for h in data.experiment.hparam_infos]
      elif value.HasField("tensor"):
        scalars[value.tag] = float(tf.make_ndarray(value.tensor))
  return hparams, metric_tags, scalars, extra


def test_config_and_final_metrics_read_back(tmp_path):
  config = config_lib.TrainConfig(tfrecord_dir="data/tfrecords", model_dir=str(tmp_path),
                                  model="fknet", learning_rate=1e-3, epochs=30,
                                  augment=AugmentConfig(flip_prob=0.5, region="keypoints"))
  values = json.loads(json.dumps(dataclasses.asdict(config)))
  results = {"val": {"nme_io": 0.0712, "failure_rate_10": 0.104, "auc_10": 0.42, "count": 345},
             "test": {"nme_io": 0.054, "failure_rate_10": 0.026, "auc_10": 0.48}}
  hparams_log.write(str(tmp_path), values, results, step=30)
  hparams, metric_tags, scalars = read_hparams_events(str(tmp_path))
  assert hparams["model"] == "fknet" and hparams["epochs"] == 30
  assert hparams["learning_rate"] == pytest.approx(1e-3)
  assert hparams["augment.flip_prob"] == 0.5 and hparams["augment.region"] == "keypoints"
  assert hparams["mixed_precision"] is False
  assert len(hparams) == len(hparams_log.flatten(values))  # every setting, nested ones too
  assert "final/val_nme_io" in metric_tags and "final/cascade_test_auc_10" in metric_tags
  # In % as every report prints them (AUC@10 stays a fraction, as in the reports).
  assert scalars == pytest.approx({
      "final/val_nme_io": 7.12, "final/val_failure_rate_10": 10.4,
      "final/val_auc_10": 0.42, "final/test_nme_io": 5.4,
      "final/test_failure_rate_10": 2.6, "final/test_auc_10": 0.48})


def test_settings_that_matter_come_first_and_trial_ids_are_unique(tmp_path):
  values = json.loads(json.dumps(dataclasses.asdict(config_lib.TrainConfig(
      tfrecord_dir="data/tfrecords", model_dir="x"))))
  results = {"val": {"nme_io": 0.05, "failure_rate_10": 0.02, "auc_10": 0.5}}
  # Two runs whose folders share a base name, as two `.../smoke` runs.
  first, second = tmp_path / "a" / "smoke", tmp_path / "b" / "smoke"
  hparams_log.write(str(first), values, results, step=2, start_time=1.7e9)
  hparams_log.write(str(second), values, results, step=2, start_time=1.7e9)
  _, _, _, one = read_experiment(str(first))
  _, _, _, two = read_experiment(str(second))
  # TensorBoard ticks the first columns: the settings that tell runs apart, not
  # adam_epsilon and augment.blur_prob (the first alphabetically).
  assert one["hparam_order"][:6] == ["model", "loss", "epochs", "learning_rate",
                                     "lr_schedule", "batch_size"]
  flat = hparams_log.flatten(values)
  rest = one["hparam_order"][len([n for n in hparams_log.FIRST if n in flat]):]
  assert rest == sorted(rest) and "adam_epsilon" in rest
  assert sorted(one["hparam_order"]) == sorted(flat)
  assert "val NME_io %" in one["metric_names"] and "test FR@10 %" in one["metric_names"]
  assert one["trial_id"] != two["trial_id"]
  assert one["trial_id"].startswith(str(first))
  # A rerun of the same folder later is a row of its own too.
  assert hparams_log.trial_id(str(first), 1.7e9) != hparams_log.trial_id(str(first), 1.8e9)
