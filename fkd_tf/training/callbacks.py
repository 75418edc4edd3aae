"""The callbacks of a training run: resume, best checkpoint, NaN guard, logs, pictures.

`fit` (one machine) and `distributed.fit` (several workers) drive the same list.
"""

import json
import os

import keras
import numpy as np
import tensorflow as tf

from fkd_tf import evaluation, io_utils, run_folder, visualize

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


class GuardedBackupAndRestore(keras.callbacks.BackupAndRestore):
  """BackupAndRestore that never backs up an epoch whose loss went NaN, so a rerun resumes
  from the last good epoch rather than from broken weights."""

  def on_epoch_end(self, epoch, logs=None):
    if logs is not None and not np.isfinite(float(logs.get("loss", 0.0))):
      return
    super().on_epoch_end(epoch, logs)


class BestNetworkCheckpoint(keras.callbacks.Callback):
  """Saves the network's own weights whenever `monitor` improves.

  Unlike ModelCheckpoint it writes atomically (a temporary file renamed into place, so a
  full disk or a kill never leaves a truncated checkpoint), never saves an epoch whose
  loss is not finite, and keeps its best value in best.json, so a resumed run only
  replaces the best checkpoint with a better epoch. It saves the network, not the trainer,
  so `run_folder.load_network` needs nothing of training.
  """

  def __init__(self, network, model_dir, monitor="val_nme_io"):
    super().__init__()
    self.network = network
    self.weights_path = os.path.join(model_dir, run_folder.BEST_WEIGHTS)
    self.record_path = os.path.join(model_dir, BEST_RECORD)
    self.monitor = monitor
    self.best = float("inf")

  def on_train_begin(self, logs=None):
    if os.path.isfile(self.record_path) and os.path.isfile(self.weights_path):
      with open(self.record_path) as f:
        self.best = float(json.load(f)[self.monitor])

  def on_epoch_end(self, epoch, logs=None):
    logs = logs or {}
    value = logs.get(self.monitor)
    if value is None or not np.isfinite(float(logs.get("loss", 0.0))):
      return
    if np.isfinite(float(value)) and float(value) < self.best:
      self.best = float(value)
      with io_utils.atomic_path(self.weights_path, suffix=".weights.h5") as tmp:
        self.network.save_weights(tmp)
      io_utils.write_json(self.record_path, {"epoch": epoch + 1, self.monitor: self.best})


class ValidationFaces(keras.callbacks.Callback):
  """Draws predicted (magenta) and true (green) keypoints on a few validation faces into
  TensorBoard each epoch, and into <model_dir>/val_faces.png at the end."""

  def __init__(self, batch, network, augment_config, normalisation, log_dir, png_path):
    super().__init__()
    self.batch = batch
    self.predict = evaluation.network_predictor(network, augment_config, normalisation)
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
        os.path.join(config.model_dir, f"backup_worker{worker}"))]
  log_dir = os.path.join(config.model_dir, "logs")
  return [
      LearningRateLogger(),
      nan_guard,
      GuardedBackupAndRestore(os.path.join(config.model_dir, "backup")),
      BestNetworkCheckpoint(network, config.model_dir),
      keras.callbacks.CSVLogger(os.path.join(config.model_dir, "training_log.csv"),
                                append=True),
      keras.callbacks.TensorBoard(log_dir, histogram_freq=1, write_graph=False),
      ValidationFaces(val_batch, network, config.augment, config.normalisation, log_dir,
                      os.path.join(config.model_dir, "val_faces.png")),
  ]
