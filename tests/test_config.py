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
