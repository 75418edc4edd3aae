"""Training as a library: `train_and_evaluate(config)` does data -> fit -> evaluate -> export.

No flags are read here (see `fkd_tf.train` for the command line), so tests and notebooks
call it with a `TrainConfig`.
"""

import dataclasses
import json
import os

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from fkd_tf import config as config_lib, distributed, evaluate, export, input_pipeline
from fkd_tf import io_utils
from fkd_tf import losses, models, records, trainer as trainer_lib, visualize
from fkd_tf.keypoints import NET_SIZE

BEST_WEIGHTS = "best.weights.h5"


def make_strategy(name):
  """tf.distribute strategy by name: default (one device), mirrored (all local GPUs),
  multi_worker (the cluster in TF_CONFIG)."""
  if name == "mirrored":
    return tf.distribute.MirroredStrategy()
  if name == "multi_worker":
    return tf.distribute.MultiWorkerMirroredStrategy()
  return tf.distribute.get_strategy()


def set_precision(mixed):
  """Mixed precision is bfloat16 on CPUs and float16 on GPUs; returns the policy name."""
  if mixed:
    policy = "mixed_float16" if tf.config.list_physical_devices("GPU") else "mixed_bfloat16"
  else:
    policy = "float32"
  keras.mixed_precision.set_global_policy(policy)
  return policy


def make_optimizer(config, steps_per_epoch):
  learning_rate = config.learning_rate
  if config.lr_schedule == "cosine":
    learning_rate = keras.optimizers.schedules.CosineDecay(
        config.learning_rate, decay_steps=config.epochs * steps_per_epoch, alpha=0.01)
  if config.weight_decay:
    return keras.optimizers.AdamW(learning_rate, weight_decay=config.weight_decay)
  return keras.optimizers.Adam(learning_rate)


def make_loss(config):
  if config.loss == "huber":
    return losses.huber(config.huber_delta)
  return losses.LOSSES[config.loss]()


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


class ValidationFaces(keras.callbacks.Callback):
  """Draws predicted (magenta) and true (green) keypoints on a few validation faces into
  TensorBoard each epoch, and into <model_dir>/val_faces.png at the end."""

  def __init__(self, batch, network, augment_config, normalisation, log_dir, png_path):
    super().__init__()
    self.batch = batch
    self.predict = evaluate.network_predictor(network, augment_config, normalisation)
    self.writer = tf.summary.create_file_writer(os.path.join(log_dir, "val_faces"))
    self.png_path = png_path

  def panel(self):
    pred = self.predict(self.batch)
    pictures = []
    for image, size, true, guess in zip(self.batch["image"].numpy(),
                                        self.batch["image_size"].numpy(),
                                        self.batch["keypoints_px"].numpy(), pred):
      face = image[:size[0], :size[1]]
      pictures.append(visualize.draw_keypoints(face, [(true, visualize.TRUE_COLOUR),
                                                      (guess, visualize.PRED_COLOUR)], 2))
    return visualize.tile(pictures, columns=4)

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
      keras.callbacks.ModelCheckpoint(
          os.path.join(config.model_dir, BEST_WEIGHTS), monitor="val_nme_io", mode="min",
          save_best_only=True, save_weights_only=True),
      keras.callbacks.CSVLogger(os.path.join(config.model_dir, "training_log.csv"),
                                append=True),
      keras.callbacks.TensorBoard(log_dir, histogram_freq=1, write_graph=False),
      ValidationFaces(val_batch, network, config.augment, config.normalisation, log_dir,
                      os.path.join(config.model_dir, "val_faces.png")),
  ]


def config_to_json(config):
  return json.loads(json.dumps(dataclasses.asdict(config)))


def build_trainer(config, steps_per_epoch):
  network = models.build(config.model)
  trainer = trainer_lib.KeypointTrainer(network, config.augment, config.normalisation,
                                        make_loss(config), seed=config.seed,
                                        nan_at_step=config.debug_nan_at_step,
                                        jit_network=config.jit_compile)
  trainer(tf.zeros([1, NET_SIZE, NET_SIZE, 1]))  # builds it, as BackupAndRestore requires
  trainer.compile(optimizer=make_optimizer(config, steps_per_epoch), jit_compile=False,
                  steps_per_execution=config.steps_per_execution)
  return trainer


def train_and_evaluate(config):
  """Trains, keeps the best-on-validation weights, evaluates and exports.

  Args:
    config: `config.TrainConfig`.
  Returns:
    dict with "val" and (when config.evaluate_test) "test" metrics, and "export" path.
  Raises:
    ValueError listing every bad setting; records.DatasetError for unusable data.
  """
  problems = config_lib.check(config)
  if problems:
    raise ValueError("bad training settings:\n  " + "\n  ".join(problems))
  info = records.read_dataset_info(config.tfrecord_dir)
  # The strategy comes first: MultiWorkerMirroredStrategy must exist before other TF work.
  strategy = make_strategy(config.strategy)
  chief = config.strategy != "multi_worker" or distributed.is_chief()
  os.makedirs(config.model_dir, exist_ok=True)
  if chief:
    io_utils.write_json(os.path.join(config.model_dir, "config.json"), config_to_json(config))
    io_utils.write_json(os.path.join(config.model_dir, "dataset_info.json"), info)
  keras.utils.set_random_seed(config.seed)
  policy = set_precision(config.mixed_precision)
  logging.info("precision policy %s", policy)

  train_count = info["splits"]["train"]["count"]
  if config.max_train_examples:
    train_count = min(train_count, config.max_train_examples)
  steps_per_epoch = -(-train_count // config.batch_size)
  train_ds = input_pipeline.make_dataset(config.tfrecord_dir, "train", config.batch_size,
                                         training=True, seed=config.seed,
                                         max_examples=config.max_train_examples)
  val_ds = input_pipeline.make_dataset(config.tfrecord_dir, "val", config.batch_size,
                                       training=False)
  val_batch = next(iter(input_pipeline.make_dataset(config.tfrecord_dir, "val", 8,
                                                    training=False, cache=False)))

  with strategy.scope():
    trainer = build_trainer(config, steps_per_epoch)
  nan_guard = NaNGuard()
  if config.strategy == "multi_worker":
    _, worker, _ = distributed.task_info()
    callbacks = make_callbacks(config, trainer.network, val_batch, nan_guard, chief, worker)
    distributed.fit(trainer, strategy, lambda context: distributed_train_dataset(
        config, context), train_count // config.batch_size, config.epochs, val_ds, callbacks)
    print(f"final weights checksum: {distributed.weights_checksum(trainer.network):.10e}")
  else:
    trainer.fit(train_ds, validation_data=val_ds, epochs=config.epochs,
                callbacks=make_callbacks(config, trainer.network, val_batch, nan_guard),
                verbose=2, shuffle=False)  # the dataset shuffles itself
  if nan_guard.where:
    epoch, batch, step = nan_guard.where
    raise FloatingPointError(
        f"the training loss became NaN or infinite at epoch {epoch}, batch {batch} (optimizer "
        f"step {step}); training stopped. The best weights so far ({BEST_WEIGHTS}), the last "
        f"good backup and earlier exports in {config.model_dir} are untouched.")

  if not chief:
    return {}
  trainer.load_weights(os.path.join(config.model_dir, BEST_WEIGHTS))
  return finish(config, trainer.network)


def distributed_train_dataset(config, context):
  """One worker's share of the training data: its own records, per-replica batches,
  repeated (every worker runs the same number of steps, as collectives require)."""
  return input_pipeline.make_dataset(
      config.tfrecord_dir, "train", context.get_per_replica_batch_size(config.batch_size),
      training=True, seed=config.seed, drop_remainder=True,
      num_input_pipelines=context.num_input_pipelines,
      input_pipeline_id=context.input_pipeline_id,
      max_examples=config.max_train_examples).repeat()


def warmup_images(tfrecord_dir, count=4):
  """A few encoded validation images, for the SavedModel's warm-up requests."""
  dataset = input_pipeline.make_dataset(tfrecord_dir, "val", count, training=False,
                                        with_bytes=True, cache=False)
  return list(next(iter(dataset))["image_bytes"].numpy())


def load_network(model_dir):
  """The best-on-validation network of a finished run, and its TrainConfig."""
  with open(os.path.join(model_dir, "config.json")) as f:
    config = config_lib.from_json(json.load(f))
  trainer = build_trainer(config, steps_per_epoch=1)
  trainer.optimizer.build(trainer.trainable_variables)
  trainer.load_weights(os.path.join(model_dir, BEST_WEIGHTS))
  return trainer.network, config


def stage_of(network, config):
  margin = config.augment.region_margin if config.augment.region == "keypoints" else None
  return export.Stage(network, config.augment.rescale_size, config.normalisation, margin)


def finish(config, network):
  """Evaluates the chosen weights on val (and test) and exports a SavedModel.

  A refining stage is evaluated on oracle boxes (around the true keypoints, label
  "oracle box"); with --coarse_model_dir the exported cascade is evaluated end to end.
  """
  predict = evaluate.network_predictor(network, config.augment, config.normalisation)
  results = {}
  splits = ["val", "test"] if config.evaluate_test else ["val"]
  oracle = config.augment.region == "keypoints"
  for split in splits:
    summary = evaluate.evaluate_split(
        predict, config.tfrecord_dir, split, os.path.join(config.model_dir, f"eval_{split}"),
        label=config.model + (" (oracle box)" if oracle else ""),
        extra={"framing": "oracle box" if oracle else "whole image"})
    print(evaluate.format_summary(summary))
    results[split] = summary
  stages = [stage_of(network, config)]
  if config.coarse_model_dir:
    stages.insert(0, stage_of(*load_network(config.coarse_model_dir)))
  if config.export and oracle and not config.coarse_model_dir:
    logging.warning("a refining stage without --coarse_model_dir is not exported")
  elif config.export:
    results["export"] = export.export(
        stages, os.path.join(config.model_dir, "export"),
        metadata={"model": config.model, "coarse_model_dir": config.coarse_model_dir},
        warmup_images=warmup_images(config.tfrecord_dir))
    print(f"exported SavedModel: {results['export']}")
    if len(stages) > 1:
      served = evaluate.saved_model_predictor(results["export"])
      for split in splits:
        summary = evaluate.evaluate_split(
            served, config.tfrecord_dir, split,
            os.path.join(config.model_dir, f"eval_cascade_{split}"), label="cascade",
            with_bytes=True, extra={"framing": "cascade, whole image in"})
        print("cascade " + evaluate.format_summary(summary))
        results[f"cascade_{split}"] = summary
  io_utils.write_json(os.path.join(config.model_dir, "results.json"), results)
  return results
