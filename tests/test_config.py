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


# --- one source of settings: the fields carry the flags' help ------------------------------

import os  # pylint: disable=g-import-not-at-top,wrong-import-position
import subprocess  # pylint: disable=g-import-not-at-top,wrong-import-position

from absl import flags  # pylint: disable=g-import-not-at-top,wrong-import-position

from fkd_tf.cli import train_flags  # pylint: disable=g-import-not-at-top,wrong-import-position

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The commit before the recipes were rewritten to stand alone (issue 26 item 3): their
# TrainConfigs are what the rewritten files must still give.
RECIPES_BEFORE = "a6de5f5"
RECIPES = ("augment", "base", "best", "coarse", "fast_coarse", "fast_refine", "smoke")


def test_every_setting_has_help_and_is_a_flag():
  flag_values = flags.FlagValues()
  train_flags.define(flag_values)
  for cls in (config_lib.TrainConfig, AugmentConfig):
    for field in dataclasses.fields(cls):
      assert field.metadata.get("help"), f"{cls.__name__}.{field.name} has no help"
      if field.name != "augment":
        assert flag_values[field.name].help == field.metadata["help"]
  flag_values(["train", "--model=fknet", "--flip_prob=0.5", "--model_dir=m"])
  config = train_flags.config(flag_values)
  assert config.model == "fknet" and config.augment.flip_prob == 0.5
  assert config.tfrecord_dir == "data/tfrecords"


def test_bad_flags_are_listed_together():
  flag_values = flags.FlagValues()
  train_flags.define(flag_values)
  flag_values(["train", "--epochs=0", "--flip_prob=3"])
  with pytest.raises(Exception, match=r"(?s)--model_dir is required.*flip_prob=3.*--epochs=0"):
    train_flags.config(flag_values)


def _recipes_at(commit, folder):
  """Writes configs/<recipe>.flags as they were at `commit` under folder; False if git or
  the commit is not there (a shallow clone)."""
  os.makedirs(os.path.join(folder, "configs"))
  for name in RECIPES:
    shown = subprocess.run(["git", "show", f"{commit}:configs/{name}.flags"], cwd=REPO,
                           capture_output=True, text=True)
    if shown.returncode != 0:
      return False
    with open(os.path.join(folder, "configs", f"{name}.flags"), "w") as f:
      f.write(shown.stdout)
  return True


def test_rewritten_recipes_train_exactly_what_they_did(tmp_path, monkeypatch):
  """Each recipe now stands alone (no undoing of base.flags); the TrainConfig it gives is
  the one the nested files of RECIPES_BEFORE gave, field by field."""
  if not _recipes_at(RECIPES_BEFORE, str(tmp_path)):
    pytest.skip(f"needs the git history ({RECIPES_BEFORE})")
  now = {name: train_flags.config_from_flagfile(os.path.join(REPO, "configs", f"{name}.flags"))
         for name in RECIPES}
  monkeypatch.chdir(tmp_path)  # the old files include each other relative to the checkout
  for name in RECIPES:
    before = train_flags.config_from_flagfile(f"configs/{name}.flags")
    assert now[name] == before, name
  assert now["base"].train_splits == "train,val" and now["smoke"].epochs == 2


def test_the_names_the_flags_offer_are_the_registries():
  # core.config names them without importing Keras (a fast --help); they must not drift.
  from fkd_tf.core import losses, models, pretrained  # pylint: disable=g-import-not-at-top
  assert sorted(config_lib.MODEL_NAMES) == sorted(models.MODELS)
  assert sorted(config_lib.LOSS_NAMES) == sorted(losses.LOSSES)
  assert sorted(config_lib.PRETRAINED_NAMES) == sorted(pretrained.SOURCES)
