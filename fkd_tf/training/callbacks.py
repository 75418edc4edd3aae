"""The callbacks of a training run: resume, best checkpoint, NaN guard, logs, pictures.

`fit` (one machine) and `distributed.fit` (several workers) drive the same list.
"""

import json
import os

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from fkd_tf.core.framing import Framing
from fkd_tf.evaluation import reports
from fkd_tf.inference import visualize
from fkd_tf.serving import run_folder
from fkd_tf.training import run_guard
from fkd_tf.utils import io_utils

BEST_RECORD = "best.json"  # epoch and value of the best checkpoint, read back on resume


class LearningRateLogger(keras.callbacks.Callback):
  """Adds the epoch's learning rate to the logs, so the CSV log has it too."""

  def on_epoch_end(self, epoch, logs=None):
    if logs is not None:
      logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


class NaNGuard(keras.callbacks.Callback):
  """Stops training at the first non-finite loss and remembers where it happened."""

  def __init__(self):
    super().__init__()
    self.where = None
    self.epoch = 0

  def on_epoch_begin(self, epoch, logs=None):
    self.epoch = epoch

  def on_train_batch_end(self, batch, logs=None):
    loss = (logs or {}).get("loss")
    if loss is not None and not np.isfinite(float(loss)) and self.where is None:
      self.where = (self.epoch + 1, batch + 1,
                    int(keras.ops.convert_to_numpy(self.model.optimizer.iterations)))
      self.model.stop_training = True


class BackupUnreadable(run_folder.RunFolderError):
  """No backup in a run's backup folder can be loaded, so the run cannot resume."""


def state_bytes(model):
  """About the size of `model`'s weights file: its variables and its optimizer's."""
  variables = list(model.weights)
  if getattr(model, "optimizer", None) is not None:
    variables += list(model.optimizer.variables)
  return sum(int(np.prod(v.shape)) * tf.as_dtype(v.dtype).size for v in variables)


def _write_error(error, what_failed, what_is_kept):
  """An OSError with `error`'s errno (ENOSPC for a full disk) and a message that names the
  file and what survived; h5py's own names only a temporary file, or nothing."""
  reason = f"{what_failed}: {error.strerror or error}{what_is_kept}"
  return OSError(error.errno, reason) if error.errno else OSError(reason)


def _room_for(model, folder, what):
  # h5 headers and the json beside the weights take well under a MiB.
  io_utils.check_free_space(folder, int(1.1 * state_bytes(model)) + 2**20, what)


class GuardedBackupAndRestore(keras.callbacks.BackupAndRestore):
  """BackupAndRestore whose backups survive a full disk, a kill and a NaN loss.

  Keras writes latest.weights.h5 in place, so a full disk or a kill mid-write leaves a
  truncated file on which every rerun fails inside h5py. Here each epoch's weights go to a
  new file, epoch_NNNN.weights.h5, written under a temporary name and renamed when
  complete; then training_metadata.json, itself replaced atomically, names that file and
  the one before. That one rename commits an epoch, so weights and epoch number always
  agree, and a failed write leaves the previous backup as it was.

  On resume the newest backup is loaded, else the one before (with a warning), else the
  run is refused with a BackupUnreadable naming each file and why, never an h5py error.
  An epoch whose loss is not finite is never backed up, and after a NaN stop the backup
  folder is kept (Keras deletes it at the end of any `fit` that did not raise), so a
  rerun resumes from the last good epoch.
  """

  def __init__(self, backup_dir, keep_at_end=False):
    # keep_at_end: a run folder keeps its last epoch's backup after `fit`, so a rerun with
    # more --epochs continues from it (Keras deletes it, and such a rerun began at epoch 1).
    super().__init__(backup_dir, save_freq="epoch", delete_checkpoint=not keep_at_end)
    self.saw_nonfinite_loss = False
    self.saved_epoch = None  # epochs completed in the newest good backup
    self._saved_weights = None  # its file name in backup_dir

  def _backup_path(self, name):
    return os.path.join(self.backup_dir, name)

  def _backups_on_disk(self):
    """[(weights path, epoch)], newest first, as the metadata names them."""
    if not tf.io.gfile.exists(self._training_metadata_path):
      # A backup Keras itself wrote (runs from before this class): latest.weights.h5.
      return [(self._weights_path, None)] if tf.io.gfile.exists(self._weights_path) else []
    try:
      with tf.io.gfile.GFile(self._training_metadata_path) as f:
        metadata = json.load(f)
      if "weights" not in metadata:  # Keras's own metadata: {"epoch", "batch"}
        return [(self._weights_path, int(metadata["epoch"]))]
      backups = [(self._backup_path(metadata["weights"]), int(metadata["epoch"]))]
      if metadata.get("previous"):
        previous = metadata["previous"]
        backups.append((self._backup_path(previous["weights"]), int(previous["epoch"])))
      return backups
    except (OSError, tf.errors.OpError, ValueError, KeyError, TypeError) as e:
      raise BackupUnreadable(
          f"cannot resume: {self._training_metadata_path} is not readable ({e}). Move "
          f"{self.backup_dir} away to restart this run from epoch 1 (best.weights.h5 and "
          "best.json stay, so only a better epoch replaces them).") from None

  def on_train_begin(self, logs=None):
    self.saw_nonfinite_loss = False
    if not self.model.built:
      raise ValueError("BackupAndRestore needs a built model; call it on a batch first")
    problems = []
    for weights_path, epoch in self._backups_on_disk():
      try:
        if self.model.optimizer is not None and not self.model.optimizer.built:
          self.model.optimizer.build(self.model.trainable_variables)  # before loading slots
        self.model.load_weights(weights_path)
      except Exception as e:  # pylint: disable=broad-except  (any failure: try the next)
        problems.append(f"{weights_path} ({type(e).__name__}: {e})")
        logging.warning("backup %s cannot be loaded: %s", weights_path, e)
        continue
      if problems:
        logging.warning("resuming from the previous backup %s (epoch %s)", weights_path,
                        epoch)
      if epoch is not None:
        self.model._initial_epoch = epoch  # pylint: disable=protected-access  (as Keras)
        self.saved_epoch, self._saved_weights = epoch, os.path.basename(weights_path)
      return
    if problems:
      raise BackupUnreadable(
          "cannot resume: no backup in " + self.backup_dir + " can be loaded: " +
          "; ".join(problems) + f". Move {self.backup_dir} away to restart this run from "
          "epoch 1 (best.weights.h5 and best.json stay, so only a better epoch replaces "
          "them).")

  def on_train_batch_end(self, batch, logs=None):
    loss = (logs or {}).get("loss")
    if loss is not None and not np.isfinite(float(loss)):
      self.saw_nonfinite_loss = True
    super().on_train_batch_end(batch, logs)

  def on_epoch_end(self, epoch, logs=None):
    if logs is not None and not np.isfinite(float(logs.get("loss", 0.0))):
      self.saw_nonfinite_loss = True
      return  # broken weights: the last good backup stays the resume point
    super().on_epoch_end(epoch, logs)

  def _save_model(self):
    """Writes this epoch's backup beside the previous one; commits it with one rename."""
    epoch = self._current_epoch
    name = f"epoch_{epoch:04d}.weights.h5"
    previous = None
    if self.saved_epoch:
      previous = {"epoch": self.saved_epoch, "weights": self._saved_weights}
    try:
      io_utils.makedirs(self.backup_dir)
      _room_for(self.model, self.backup_dir, f"the backup of epoch {epoch}")
      with io_utils.atomic_path(self._backup_path(name), suffix=".weights.h5") as tmp:
        self.model.save_weights(tmp, overwrite=True)
      io_utils.write_json(self._training_metadata_path, {
          "epoch": epoch, "batch": self._last_batch_seen, "weights": name,
          "previous": previous})
    except OSError as e:
      kept = (f"; the backup of epoch {self.saved_epoch} is intact, so a rerun resumes "
              "from it" if self.saved_epoch else "")
      raise _write_error(e, f"cannot write the backup of epoch {epoch} into "
                            f"{self.backup_dir}", kept) from e
    self.saved_epoch, self._saved_weights = epoch, name
    self._remove_unreferenced(keep={name, previous["weights"] if previous else name})

  def _remove_unreferenced(self, keep):
    """Deletes backups older than the previous one (and Keras's own latest.weights.h5)."""
    for entry in tf.io.gfile.listdir(self.backup_dir):
      if entry.endswith(".weights.h5") and not entry.startswith(".") and entry not in keep:
        tf.io.gfile.remove(self._backup_path(entry))

  def on_train_end(self, logs=None):
    if self.saw_nonfinite_loss:
      return  # a NaN stop ends `fit` normally; Keras would delete the resume point
    super().on_train_end(logs)


def nan_stop_message(where, backup, best, model_dir):
  """What a NaN stop did and what it left: each clause checked against the callbacks."""
  epoch, batch, step = where
  if backup is not None and backup.saved_epoch:
    resume = (f"The backup of epoch {backup.saved_epoch} in {backup.backup_dir} is kept: "
              f"rerunning the same command resumes from epoch {backup.saved_epoch + 1} (lower "
              "--learning_rate first if the loss diverged).")
  else:
    resume = "No epoch finished before it, so there is no backup: a rerun starts from epoch 1."
  if best is not None and best.best_epoch:
    kept = (f"The best weights so far ({run_folder.BEST_WEIGHTS}, epoch {best.best_epoch}) "
            f"and earlier exports in {model_dir} are untouched; nothing was exported.")
  else:
    kept = f"There is no best checkpoint yet; earlier exports in {model_dir} are untouched."
  return (f"the training loss became NaN or infinite at epoch {epoch}, batch {batch} "
          f"(optimizer step {step}); training stopped. {resume} {kept}")


class BestNetworkCheckpoint(keras.callbacks.Callback):
  """Saves the network's own weights whenever `monitor` improves.

  Unlike ModelCheckpoint it writes atomically (a temporary file renamed into place, so a
  full disk or a kill never leaves a truncated checkpoint), never saves an epoch whose
  loss is not finite, and keeps its best value in best.json, so a resumed run only
  replaces the best checkpoint with a better epoch. It saves the network, not the trainer,
  so `run_folder.load_network` needs nothing of training.

  every_epoch: save every finite epoch (the run keeps its last network, as the original).
  """

  def __init__(self, network, model_dir, monitor="val_nme_io", every_epoch=False):
    super().__init__()
    self.network = network
    self.every_epoch = every_epoch
    self.weights_path = os.path.join(model_dir, run_folder.BEST_WEIGHTS)
    self.record_path = os.path.join(model_dir, BEST_RECORD)
    self.monitor = monitor
    self.best = float("inf")
    self.best_epoch = None

  def on_train_begin(self, logs=None):
    if io_utils.isfile(self.record_path) and io_utils.isfile(self.weights_path):
      with tf.io.gfile.GFile(self.record_path) as f:
        record = json.load(f)
      self.best, self.best_epoch = float(record[self.monitor]), record.get("epoch")

  def on_epoch_end(self, epoch, logs=None):
    logs = logs or {}
    value = logs.get(self.monitor)
    if value is None or not np.isfinite(float(logs.get("loss", 0.0))):
      return
    if self.every_epoch or (np.isfinite(float(value)) and float(value) < self.best):
      try:
        _room_for(self.network, os.path.dirname(self.weights_path), run_folder.BEST_WEIGHTS)
        with io_utils.atomic_path(self.weights_path, suffix=".weights.h5") as tmp:
          self.network.save_weights(tmp)
      except OSError as e:
        raise _write_error(e, f"cannot write {self.weights_path} (epoch {epoch + 1})",
                           "; the previous best checkpoint is intact") from e
      self.best, self.best_epoch = min(self.best, float(value)), epoch + 1
      # The saved epoch's own value: the best so far, unless every epoch is saved.
      io_utils.write_json(self.record_path, {"epoch": epoch + 1, self.monitor: float(value)})


class CSVLogger(keras.callbacks.CSVLogger):
  """Keras's CSVLogger, able to end on a remote file: Keras 3.15 asks its file for
  `.closed`, which tf.io.gfile.GFile (its file on gs:// and ram://) lacks."""

  def on_train_end(self, logs=None):
    if self.csv_file is not None:
      self.csv_file.close()
      self.csv_file = None
    self.writer = None


class ValidationFaces(keras.callbacks.Callback):
  """Draws predicted (magenta) and true (green) keypoints on a few validation faces into
  TensorBoard each epoch, and into <model_dir>/val_faces.png at the end."""

  def __init__(self, batch, network, net_framing, log_dir, png_path):
    super().__init__()
    self.batch = batch
    self.predict = reports.network_predictor(network, net_framing)
    self.writer = tf.summary.create_file_writer(os.path.join(log_dir, "val_faces"))
    self.png_path = png_path

  def panel(self):
    pred = self.predict(self.batch)
    faces = [image[:size[0], :size[1]] for image, size in
             zip(self.batch["image"].numpy(), self.batch["image_size"].numpy())]
    return visualize.face_panel(faces, self.batch["keypoints_px"].numpy(), pred, columns=4)

  def on_epoch_end(self, epoch, logs=None):
    with self.writer.as_default():
      tf.summary.image("val_faces", visualize.to_summary_array([self.panel()]), step=epoch)
    self.writer.flush()

  def on_train_end(self, logs=None):
    io_utils.save_png(self.panel(), self.png_path)


def make_callbacks(config, network, val_batch, nan_guard, chief=True, worker=0):
  """Every worker keeps its own backup (to resume); only the chief writes the rest."""
  if not chief:
    return [nan_guard, GuardedBackupAndRestore(
        os.path.join(config.model_dir, f"backup_worker{worker}"), keep_at_end=True)]
  log_dir = os.path.join(config.model_dir, "logs")
  return [
      LearningRateLogger(),
      nan_guard,
      GuardedBackupAndRestore(os.path.join(config.model_dir, run_guard.BACKUP),
                              keep_at_end=True),
      BestNetworkCheckpoint(network, config.model_dir, every_epoch=config.keep == "last"),
      CSVLogger(os.path.join(config.model_dir, "training_log.csv"), append=True),
      keras.callbacks.TensorBoard(log_dir, histogram_freq=1, write_graph=False),
      ValidationFaces(val_batch, network, Framing.of_config(config), log_dir,
                      os.path.join(config.model_dir, "val_faces.png")),
  ]
