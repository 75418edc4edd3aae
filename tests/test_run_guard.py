"""A run folder's owner (its lock) and the settings a rerun may change."""

import dataclasses
import json
import os
import socket
import subprocess
import sys

import pytest

from fkd_tf.serving import run_folder
from fkd_tf.core import config as config_lib
from fkd_tf.core.augment import AugmentConfig
from fkd_tf.training import run_guard

HOST = socket.gethostname()


def _write_lock(model_dir, **owner):
  record = {"pid": os.getpid(), "host": HOST, "since": "2026-01-02 03:04:05", **owner}
  with open(os.path.join(model_dir, ".lock"), "w") as f:
    json.dump(record, f)
  return record


def _lock_owner(model_dir):
  with open(os.path.join(model_dir, ".lock")) as f:
    return json.load(f)


@pytest.fixture
def live_process():
  process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
  yield process
  process.kill()
  process.wait()


def test_a_live_owner_in_another_process_is_refused(tmp_path, live_process):
  _write_lock(str(tmp_path), pid=live_process.pid,
              start_ticks=run_guard._process_start_ticks(live_process.pid))
  with pytest.raises(run_guard.RunFolderBusy) as raised:
    run_guard.RunLock(str(tmp_path)).acquire()
  assert str(raised.value) == (
      f"{tmp_path} is in use by another training: process {live_process.pid}, since "
      "2026-01-02 03:04:05. Wait for it to end or choose another --model_dir.")
  assert _lock_owner(str(tmp_path))["pid"] == live_process.pid  # left alone


def test_the_lock_holds_pid_and_host_and_goes_at_exit(tmp_path):
  with run_guard.RunLock(str(tmp_path)):
    owner = _lock_owner(str(tmp_path))
    assert owner["pid"] == os.getpid() and owner["host"] == HOST
    with pytest.raises(run_guard.RunFolderBusy, match=f"process {os.getpid()},"):
      run_guard.RunLock(str(tmp_path)).acquire()
  assert not os.path.exists(tmp_path / ".lock")
  with pytest.raises(RuntimeError):  # released when the training fails, too
    with run_guard.RunLock(str(tmp_path)):
      raise RuntimeError("training failed")
  assert not os.path.exists(tmp_path / ".lock")


def test_the_lock_of_a_dead_process_is_taken_over_with_a_warning(tmp_path, caplog):
  ended = subprocess.Popen([sys.executable, "-c", "pass"])
  ended.wait()
  _write_lock(str(tmp_path), pid=ended.pid)
  with run_guard.RunLock(str(tmp_path)):
    assert _lock_owner(str(tmp_path))["pid"] == os.getpid()
  assert (f"taking over the lock of process {ended.pid}, which ended without releasing it"
          in caplog.text)
  assert os.listdir(tmp_path) == []  # no aside copy left behind


def test_a_reused_pid_does_not_keep_a_stale_lock(tmp_path):
  # The pid is alive (it is ours) but started at another time: its owner has ended.
  _write_lock(str(tmp_path), start_ticks=run_guard._process_start_ticks(os.getpid()) - 1)
  with run_guard.RunLock(str(tmp_path)) as lock:
    assert lock.held


def test_an_owner_on_another_host_is_refused_with_the_lock_to_delete(tmp_path):
  _write_lock(str(tmp_path), pid=4242, host="elsewhere")
  with pytest.raises(run_guard.RunFolderBusy) as raised:
    run_guard.RunLock(str(tmp_path)).acquire()
  assert "process 4242 on host elsewhere" in str(raised.value)
  assert f"if that training has ended, delete {tmp_path / '.lock'}" in str(raised.value)


def _config(**overrides):
  return config_lib.TrainConfig(tfrecord_dir="data", model_dir="run", model="tiny",
                                normalisation="centered", **overrides)


def test_settings_that_change_the_weights_are_refused_the_rest_allowed(tmp_path):
  old = _config()
  with open(tmp_path / run_folder.CONFIG, "w") as f:
    json.dump(json.loads(json.dumps(dataclasses.asdict(old))), f)
  # Longer training, another learning rate or augmentation strength: the same weights.
  run_guard.check_compatible(str(tmp_path), dataclasses.replace(
      old, epochs=90, learning_rate=0.1, augment=AugmentConfig(flip_prob=0.0)))
  new = dataclasses.replace(old, model="fknet", normalisation="original",
                            augment=AugmentConfig(region="keypoints"))
  with pytest.raises(run_guard.RunFolderMismatch) as raised:
    run_guard.check_compatible(str(tmp_path), new)
  assert str(raised.value) == (
      f"{tmp_path} holds a run made with other settings, so its weights cannot continue "
      "under these: --model: 'tiny' there, 'fknet' now (the network, so its weights); "
      "--normalisation: 'centered' there, 'original' now (what the network's outputs mean); "
      "--region: 'image' there, 'keypoints' now (what the network sees: the whole image or "
      "the keypoint box). Choose another --model_dir, or rerun with that run's settings (its "
      "config.json).")
  run_guard.check_compatible(str(tmp_path / "new_run"), new)  # no config.json: a new run


def test_an_impossible_model_dir_is_a_one_line_error(tmp_path):
  a_file = tmp_path / "notes.txt"
  a_file.write_text("not a folder")
  with pytest.raises(run_folder.RunFolderError, match=f"^--model_dir {a_file} is a file"):
    run_guard.make_folder(str(a_file))
  inside_a_file = str(a_file / "run")
  with pytest.raises(run_folder.RunFolderError,
                     match=f"^--model_dir {inside_a_file} cannot be created: Not a directory$"):
    run_guard.make_folder(inside_a_file)


def _finished_run(model_dir, epochs, results_epochs=None, backup_epoch=None):
  """A run folder as a finished run leaves it; results.json without "epochs" is an older
  run's, and backup_epoch None a run whose backup was deleted at its end."""
  os.makedirs(os.path.join(model_dir, run_guard.BACKUP))
  config = config_lib.TrainConfig(tfrecord_dir="d", model_dir=model_dir, model="tiny",
                                  epochs=epochs, augment=AugmentConfig())
  with open(os.path.join(model_dir, "config.json"), "w") as f:
    json.dump(json.loads(json.dumps(dataclasses.asdict(config))), f)
  results = {"val": {}} if results_epochs is None else {"val": {}, "epochs": results_epochs}
  with open(os.path.join(model_dir, run_guard.RESULTS), "w") as f:
    json.dump(results, f)
  if backup_epoch is not None:
    with open(os.path.join(model_dir, run_guard.BACKUP, "training_metadata.json"), "w") as f:
      json.dump({"epoch": backup_epoch, "batch": 0, "weights": "epoch_0002.weights.h5"}, f)
  return config


def test_a_finished_run_is_refused_unless_more_epochs_can_continue_it(tmp_path):
  model_dir = str(tmp_path / "run")
  config = _finished_run(model_dir, epochs=2, results_epochs=2, backup_epoch=2)
  with pytest.raises(run_guard.RunFinished, match=r"is finished \(2/2 epochs\): nothing"):
    run_guard.check_not_finished(model_dir, config)
  run_guard.check_not_finished(model_dir, dataclasses.replace(config, epochs=5))  # continues
  # An unfinished folder (no results.json) is never refused.
  run_guard.check_not_finished(str(tmp_path), config)


def test_an_older_finished_run_without_its_backup_cannot_continue(tmp_path):
  model_dir = str(tmp_path / "run")
  config = _finished_run(model_dir, epochs=3)  # its results.json predates "epochs"
  with pytest.raises(run_guard.RunFinished, match=r"is finished \(3/3 epochs\)"):
    run_guard.check_not_finished(model_dir, config)
  with pytest.raises(run_guard.RunFinished,
                     match=rf"^{model_dir} finished 3 epochs but keeps no backup of epoch 3 "
                           rf".*choose another --model_dir, with --init_from={model_dir}"):
    run_guard.check_not_finished(model_dir, dataclasses.replace(config, epochs=4))
