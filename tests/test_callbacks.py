"""The resume backup and the best checkpoint under faults: a full disk, a truncated file,
a NaN epoch. A two-weight Keras model on numpy data keeps each test to a second or two."""

import errno
import json
import os
import shutil

import keras
import numpy as np
import pytest

from fkd_tf.utils import io_utils
from fkd_tf.training import callbacks

INPUTS = np.linspace(-1, 1, 32, dtype=np.float32).reshape(16, 2)
TARGETS = INPUTS @ np.array([[2.0], [-1.0]], np.float32)


def _model():
  model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
  model.compile(keras.optimizers.Adam(0.05), loss="mse")
  model.optimizer.build(model.trainable_variables)  # as `fit` would, for hand-driven tests
  return model


class StopAt(keras.callbacks.Callback):
  """Raises at the start of an epoch, as a kill would end the process there."""

  def __init__(self, epoch):
    super().__init__()
    self.epoch = epoch

  def on_epoch_begin(self, epoch, logs=None):
    if epoch == self.epoch:
      raise KeyboardInterrupt(f"killed before epoch {epoch + 1}")


class WeightsAtEpochEnd(keras.callbacks.Callback):
  def __init__(self):
    super().__init__()
    self.by_epoch = {}

  def on_epoch_end(self, epoch, logs=None):
    self.by_epoch[epoch + 1] = [w.copy() for w in self.model.get_weights()]


def _fit(model, backup_dir, epochs, *more):
  return model.fit(INPUTS, TARGETS, epochs=epochs, batch_size=8, verbose=0,
                   callbacks=[callbacks.GuardedBackupAndRestore(backup_dir), *more])


def _resume(backup_dir):
  """A fresh model resumed by the backup, and the epoch it would start after."""
  model = _model()
  backup = callbacks.GuardedBackupAndRestore(backup_dir)
  backup.set_model(model)
  backup.on_train_begin()
  return model, model._initial_epoch  # pylint: disable=protected-access


def _metadata(backup_dir):
  with open(os.path.join(backup_dir, "training_metadata.json")) as f:
    return json.load(f)


def _truncate(path):
  size = os.path.getsize(path)
  with open(path, "r+b") as f:
    f.truncate(size // 2)


def test_a_full_disk_mid_write_leaves_the_last_backup_whole(tmp_path):
  backup_dir = str(tmp_path / "backup")
  model, weights = _model(), WeightsAtEpochEnd()
  real_save = model.save_weights

  class DiskFullAtEpoch3(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
      if epoch == 2:
        def half_then_full(filepath, overwrite=True):
          real_save(filepath, overwrite=overwrite)
          _truncate(filepath)  # what a disk that fills up mid-write leaves behind
          raise OSError(errno.ENOSPC, "No space left on device")
        model.save_weights = half_then_full

  with pytest.raises(OSError) as raised:
    _fit(model, backup_dir, 5, weights, DiskFullAtEpoch3())
  assert raised.value.errno == errno.ENOSPC
  assert str(raised.value) == (
      f"[Errno 28] cannot write the backup of epoch 3 into {backup_dir}: No space left on "
      "device; the backup of epoch 2 is intact, so a rerun resumes from it")
  # Nothing half-written under any name: the two good backups and their metadata only.
  assert sorted(os.listdir(backup_dir)) == ["epoch_0001.weights.h5", "epoch_0002.weights.h5",
                                            "training_metadata.json"]
  assert _metadata(backup_dir)["epoch"] == 2
  resumed, start = _resume(backup_dir)
  assert start == 2
  for got, want in zip(resumed.get_weights(), weights.by_epoch[2]):
    np.testing.assert_array_equal(got, want)


def test_free_space_is_checked_before_a_backup_is_written(tmp_path, monkeypatch):
  backup_dir = str(tmp_path / "backup")
  model = _model()
  written = []
  real_save = model.save_weights
  model.save_weights = lambda filepath, overwrite=True: (written.append(filepath) or
                                                         real_save(filepath))
  monkeypatch.setattr(io_utils.shutil, "disk_usage",
                      lambda folder: type("Usage", (), {"free": 4096})())
  with pytest.raises(OSError, match=r"no room for the backup of epoch 1 in .*backup: it "
                                    r"needs about 1\.0 MiB and 0\.0 MiB are free"):
    _fit(model, backup_dir, 2)
  assert written == [] and os.listdir(backup_dir) == []


def test_an_unreadable_newest_backup_falls_back_to_the_one_before(tmp_path, caplog):
  backup_dir = str(tmp_path / "backup")
  weights = WeightsAtEpochEnd()
  with pytest.raises(KeyboardInterrupt):
    _fit(_model(), backup_dir, 6, weights, StopAt(3))
  metadata = _metadata(backup_dir)
  assert metadata["epoch"] == 3 and metadata["previous"] == {
      "epoch": 2, "weights": "epoch_0002.weights.h5"}
  _truncate(os.path.join(backup_dir, "epoch_0003.weights.h5"))  # bit rot, a bad copy...
  resumed, start = _resume(backup_dir)
  assert start == 2
  for got, want in zip(resumed.get_weights(), weights.by_epoch[2]):
    np.testing.assert_array_equal(got, want)
  assert "epoch_0003.weights.h5 cannot be loaded" in caplog.text
  assert "resuming from the previous backup" in caplog.text

  _truncate(os.path.join(backup_dir, "epoch_0002.weights.h5"))
  with pytest.raises(callbacks.BackupUnreadable) as raised:
    _resume(backup_dir)
  message = str(raised.value)
  assert message.startswith(f"cannot resume: no backup in {backup_dir} can be loaded: ")
  for name in ("epoch_0003.weights.h5", "epoch_0002.weights.h5"):
    assert os.path.join(backup_dir, name) in message
  assert f"Move {backup_dir} away to restart this run from epoch 1" in message


def test_a_truncated_backup_written_by_keras_itself_is_refused_by_name(tmp_path):
  # The layout of runs made before GuardedBackupAndRestore wrote its own: Keras wrote
  # latest.weights.h5 in place, and a full disk left it truncated.
  backup_dir = str(tmp_path / "backup")
  with pytest.raises(KeyboardInterrupt):
    _fit(_model(), backup_dir, 4, keras.callbacks.BackupAndRestore(backup_dir), StopAt(2))
  latest = os.path.join(backup_dir, "latest.weights.h5")
  # A whole one still resumes, and stays the previous backup until the next is written.
  continued_dir = str(tmp_path / "continued")
  shutil.copytree(backup_dir, continued_dir)
  with pytest.raises(KeyboardInterrupt):
    _fit(_model(), continued_dir, 5, StopAt(3))
  assert _metadata(continued_dir)["previous"] == {"epoch": 2, "weights": "latest.weights.h5"}
  assert _resume(continued_dir)[1] == 3
  _truncate(latest)
  with pytest.raises(callbacks.BackupUnreadable, match=f"can be loaded: {latest} "):
    _resume(backup_dir)


def test_a_nan_epoch_is_not_backed_up_and_the_backup_outlives_the_stop(tmp_path):
  backup_dir = str(tmp_path / "backup")
  model = _model()
  backup = callbacks.GuardedBackupAndRestore(backup_dir)
  backup.set_model(model)
  backup.on_train_begin()
  backup.on_epoch_end(0, {"loss": 0.5})
  backup.on_train_batch_end(0, {"loss": float("nan")})
  backup.on_epoch_end(1, {"loss": float("nan")})
  backup.on_train_end()  # `fit` ends normally after NaNGuard's stop_training
  assert _metadata(backup_dir)["epoch"] == 1
  assert backup.saved_epoch == 1
  assert _resume(backup_dir)[1] == 1
  # Without a NaN, a finished fit removes its backup, as Keras does.
  finished = callbacks.GuardedBackupAndRestore(backup_dir)
  finished.set_model(_model())
  finished.on_train_begin()
  finished.on_epoch_end(1, {"loss": 0.4})
  finished.on_train_end()
  assert not os.path.exists(backup_dir)


def test_the_best_checkpoint_is_never_written_from_a_nan_epoch(tmp_path):
  network = _model()
  best = callbacks.BestNetworkCheckpoint(network, str(tmp_path))
  best.set_model(network)
  best.on_train_begin()
  weights_path = tmp_path / "best.weights.h5"
  # A NaN loss with a (meaningless) excellent validation score: not saved.
  best.on_epoch_end(0, {"loss": float("nan"), "val_nme_io": 0.01})
  assert not weights_path.exists() and best.best == float("inf")
  best.on_epoch_end(1, {"loss": 1.0, "val_nme_io": 0.2})
  saved = weights_path.read_bytes()
  network.set_weights([w + 1 for w in network.get_weights()])
  best.on_epoch_end(2, {"loss": float("inf"), "val_nme_io": 0.05})
  assert weights_path.read_bytes() == saved
  assert json.loads((tmp_path / "best.json").read_text()) == {"epoch": 2, "val_nme_io": 0.2}
  assert best.best_epoch == 2


def test_nan_stop_message_says_what_was_kept(tmp_path):
  backup = callbacks.GuardedBackupAndRestore(str(tmp_path / "backup"))
  best = callbacks.BestNetworkCheckpoint(None, str(tmp_path))
  backup.saved_epoch, best.best_epoch = 2, 1
  message = callbacks.nan_stop_message((3, 2, 8), backup, best, str(tmp_path))
  assert message == (
      "the training loss became NaN or infinite at epoch 3, batch 2 (optimizer step 8); "
      f"training stopped. The backup of epoch 2 in {tmp_path / 'backup'} is kept: rerunning "
      "the same command resumes from epoch 3 (lower --learning_rate first if the loss "
      f"diverged). The best weights so far (best.weights.h5, epoch 1) and earlier exports "
      f"in {tmp_path} are untouched; nothing was exported.")
  backup.saved_epoch, best.best_epoch = None, None
  message = callbacks.nan_stop_message((1, 2, 2), backup, best, str(tmp_path))
  assert "there is no backup: a rerun starts from epoch 1" in message
  assert "There is no best checkpoint yet" in message
