import dataclasses
import json

import pytest

from fkd_tf.core import config as config_lib
from fkd_tf.core.augment import AugmentConfig


def test_check_lists_every_bad_setting_by_name():
  config = config_lib.TrainConfig(tfrecord_dir="d", model_dir="m", model="nope", epochs=0,
                                  batch_size=-3, learning_rate=0.0, loss="mse")
  problems = config_lib.check(config)
  assert len(problems) == 5
  joined = "\n".join(problems)
  for name in ("--model='nope'", "--epochs=0", "--batch_size=-3", "--learning_rate=0.0",
               "--loss='mse'"):
    assert name in joined


def test_sound_config_has_no_problems():
  assert config_lib.check(config_lib.TrainConfig(tfrecord_dir="d", model_dir="m")) == []


def test_refining_stage_needs_keypoint_framing():
  config = config_lib.TrainConfig(tfrecord_dir="d", model_dir="m", coarse_model_dir="c")
  assert config_lib.check(config) == [
      "--coarse_model_dir needs --region=keypoints (a refining stage)"]


def test_json_round_trip_keeps_every_field_and_ignores_unknown_ones():
  config = config_lib.TrainConfig(tfrecord_dir="d", model_dir="m", model="fknet",
                                  augment=AugmentConfig(region="keypoints", flip_prob=0.5))
  values = json.loads(json.dumps(dataclasses.asdict(config)))
  values["retired_setting"] = 3  # config.json of an older run may have more fields
  values["augment"]["retired_augment"] = 1
  assert config_lib.from_json(values) == config


def test_bad_augmentation_is_refused_with_its_name():
  with pytest.raises(ValueError, match="flip_prob=1.5 must lie in"):
    AugmentConfig(flip_prob=1.5)


def test_fidelity_settings_round_trip_and_old_runs_read_as_before():
  config = config_lib.TrainConfig(
      tfrecord_dir="d", model_dir="m", train_splits="train,val", bias_init="torch",
      adam_epsilon=1e-8, keep="last", augment=AugmentConfig(original_rounding=True))
  assert config_lib.check(config) == []
  assert config_lib.train_splits_of(config) == ["train", "val"]
  values = json.loads(json.dumps(dataclasses.asdict(config)))
  assert config_lib.from_json(values) == config
  # A config.json written before these settings existed reads as what that run did.
  for name in ("train_splits", "bias_init", "adam_epsilon", "keep"):
    del values[name]
  del values["augment"]["original_rounding"]
  old = config_lib.from_json(values)
  assert (old.train_splits, old.bias_init, old.adam_epsilon, old.keep) == (
      "train", "zeros", 1e-7, "best")
  assert not old.augment.original_rounding


def test_fidelity_settings_are_checked_by_name():
  check = lambda **values: config_lib.check(
      config_lib.TrainConfig(tfrecord_dir="d", model_dir="m", **values))
  assert "--train_splits='train,test'" in check(train_splits="train,test", keep="last")[0]
  assert "--train_splits='train,train'" in check(train_splits="train,train")[0]
  assert check(train_splits="train,val") == [
      "--keep=best chooses the epoch on val, which --train_splits=train,val trains on: use "
      "--keep=last"]
  assert check(model="fknet", bias_init="torch") == [
      "--bias_init=torch is implemented for --model=ppbnet only"]
  assert check(adam_epsilon=0.0) == ["--adam_epsilon=0.0 must be > 0"]
  assert "--keep='first'" in check(keep="first")[0]
