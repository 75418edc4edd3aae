"""Training across workers with tf.distribute, where Keras `fit` cannot go yet.

Keras 3.15's `fit` fails under MultiWorkerMirroredStrategy at its first step
("Attempt to convert a value (PerReplica:...) to a Tensor", keras-team/keras#20585). This
loop runs the very same `KeypointTrainer.update_on_batch` through `strategy.run` and
drives the same Keras callbacks (BackupAndRestore, checkpoints, CSV log, TensorBoard) by
hand, so both paths share the train step and the run folder looks the same.
"""

import json
import os

import keras
import numpy as np
import tensorflow as tf


def task_info():
  """(task type, index, number of workers) from TF_CONFIG; chief when there is none."""
  config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
  task = config.get("task", {})
  cluster = config.get("cluster", {})
  workers = sum(len(cluster.get(k, [])) for k in ("chief", "worker")) or 1
  return task.get("type", "worker"), int(task.get("index", 0)), workers


def is_chief():
  """The chief writes checkpoints, logs and exports: task 'chief', or worker 0 without one."""
  kind, index, _ = task_info()
  config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
  has_chief = bool(config.get("cluster", {}).get("chief"))
  return kind == "chief" or (kind == "worker" and index == 0 and not has_chief)


def validate(trainer, dataset):
  """Evaluation-frame val_loss and val_nme_io over a (local) dataset."""
  step = tf.function(trainer.evaluate_batch)
  losses, nmes = [], []
  for batch in dataset:
    loss, nme = step(batch)
    losses.append(float(loss) * len(nme))
    nmes.extend(nme.numpy().tolist())
  return {"val_loss": sum(losses) / len(nmes), "val_nme_io": float(np.mean(nmes))}


def fit(trainer, strategy, dataset_fn, steps_per_epoch, epochs, val_dataset, callbacks):
  """Trains `epochs` epochs of `steps_per_epoch` global steps; returns the last logs.

  Args:
    dataset_fn: tf.distribute.InputContext -> per-replica batched, repeated dataset.
    callbacks: Keras callbacks; BackupAndRestore's restored epoch is honoured.
  """
  dataset = strategy.distribute_datasets_from_function(dataset_fn)
  iterator = iter(dataset)

  @tf.function
  def train_step(iterator):
    per_replica = strategy.run(trainer.update_on_batch, args=(next(iterator),))
    return strategy.reduce(tf.distribute.ReduceOp.MEAN, per_replica, axis=None)

  callback_list = keras.callbacks.CallbackList(callbacks, add_history=True, model=trainer,
                                               epochs=epochs, steps=steps_per_epoch,
                                               verbose=0)
  trainer.stop_training = False
  callback_list.on_train_begin()
  logs = {}
  # BackupAndRestore.on_train_begin sets _initial_epoch, as fit() reads it.
  for epoch in range(getattr(trainer, "_initial_epoch", None) or 0, epochs):
    callback_list.on_epoch_begin(epoch)
    losses = []
    for step in range(steps_per_epoch):
      callback_list.on_train_batch_begin(step)
      losses.append(float(train_step(iterator)))
      callback_list.on_train_batch_end(step, {"loss": float(np.mean(losses))})
      if trainer.stop_training:
        break
    logs = {"loss": float(np.mean(losses)), **validate(trainer, val_dataset)}
    print(f"Epoch {epoch + 1}/{epochs} - loss: {logs['loss']:.4f} - val_loss: "
          f"{logs['val_loss']:.4f} - val_nme_io: {logs['val_nme_io']:.4f}", flush=True)
    callback_list.on_epoch_end(epoch, logs)
    if trainer.stop_training:
      break
  callback_list.on_train_end(logs)
  return logs


def weights_checksum(network):
  """A float64 sum over all weights, to compare replicas of one model across workers."""
  return float(sum(np.abs(np.asarray(w, np.float64)).sum() for w in network.get_weights()))
