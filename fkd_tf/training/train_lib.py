"""The training run end to end: `train_and_evaluate(config)` does data -> fit -> evaluate ->
export. The train step itself is `trainer.KeypointTrainer.update_on_batch`; `fit` (or
`distributed.fit` across workers) loops over it.

No flags are read here (see `fkd_tf.train` for the command line), so tests and notebooks
call it with a `TrainConfig`.
"""

import dataclasses
import json
import os

from absl import logging
import keras
import tensorflow as tf

from fkd_tf.evaluation import reports
from fkd_tf.serving import run_folder
from fkd_tf.utils import io_utils
from fkd_tf.core import config as config_lib
from fkd_tf.core import losses, models
from fkd_tf.core.framing import Framing
from fkd_tf.core.keypoints import NET_SIZE
from fkd_tf.data import pipeline, records
from fkd_tf.serving import saved_model
from fkd_tf.serving.module import stage_of
from fkd_tf.training import callbacks as callbacks_lib
from fkd_tf.training import distributed, hparams_log, pretrained_init, run_guard
from fkd_tf.training import trainer as trainer_lib


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
  # config.adam_epsilon is added before Keras' bias correction (after it in PyTorch): see
  # core.config.TrainConfig.
  if config.weight_decay:
    return keras.optimizers.AdamW(learning_rate, weight_decay=config.weight_decay,
                                  epsilon=config.adam_epsilon)
  return keras.optimizers.Adam(learning_rate, epsilon=config.adam_epsilon)


def make_loss(config):
  if config.loss == "huber":
    return losses.huber(config.huber_delta)
  return losses.LOSSES[config.loss]()


def config_to_json(config):
  return json.loads(json.dumps(dataclasses.asdict(config)))


def build_network(config):
  """A freshly initialised network of the run's model ("torch" biases only for ppbnet)."""
  options = {"bias_init": config.bias_init} if config.bias_init != "zeros" else {}
  return models.build(config.model, **options)


def build_trainer(config, steps_per_epoch):
  network = build_network(config)
  trainer = trainer_lib.KeypointTrainer(network, config.augment, Framing.of_config(config),
                                        make_loss(config), seed=config.seed,
                                        nan_at_step=config.debug_nan_at_step,
                                        jit_network=config.jit_compile)
  trainer(tf.zeros([1, NET_SIZE, NET_SIZE, 1]))  # builds it, as BackupAndRestore requires
  trainer.compile(optimizer=make_optimizer(config, steps_per_epoch), jit_compile=False,
                  steps_per_execution=config.steps_per_execution)
  return trainer


def train_and_evaluate(config, flags_text="", allow_memory_folder=False):
  """Trains, keeps the best-on-validation (or the last) weights, evaluates and exports.

  Nothing is written into config.model_dir before it is known to be this run's: the
  --init_from run's weights are read, the folder's lock is taken (a second training on it
  is refused), an existing config.json is checked against `config` (a run whose weights
  these settings cannot continue is refused) and a finished run is refused unless
  config.epochs asks for more (then it continues from its last epoch).

  Args:
    config: `config.TrainConfig`.
    flags_text: the command line's flags, written as flags.txt beside config.json.
    allow_memory_folder: accept a ram:// model_dir, which vanishes when the process ends
      (tests; the command line never sets it).
  Returns:
    dict with "val" and (when config.evaluate_test) "test" metrics, and "export" path.
  Raises:
    ValueError listing every bad setting; records.DatasetError for unusable data;
    run_folder.RunFolderError for a run folder that is busy, unwritable or another run's;
    FloatingPointError when the loss stops being finite.
  """
  problems = config_lib.check(config)
  if problems:
    raise ValueError("bad training settings:\n  " + "\n  ".join(problems))
  if not allow_memory_folder:
    run_guard.refuse_memory_folder(config.model_dir)
  if config.init_from:
    check_init_from(config)
  info = records.read_dataset_info(config.tfrecord_dir)
  chief = config.strategy != "multi_worker" or distributed.is_chief()
  run_guard.make_folder(config.model_dir)
  # Every worker keeps its own backup in the folder, so each holds its own lock.
  lock_name = (run_guard.LOCK if chief else
               f"{run_guard.LOCK}-worker{distributed.task_info()[1]}")
  with run_guard.RunLock(config.model_dir, lock_name):
    run_guard.check_compatible(config.model_dir, config)
    run_guard.check_not_finished(config.model_dir, config)
    if chief:
      io_utils.write_json(os.path.join(config.model_dir, "config.json"),
                          config_to_json(config))
      io_utils.write_json(os.path.join(config.model_dir, "dataset_info.json"), info)
      if flags_text:
        io_utils.write_text(os.path.join(config.model_dir, "flags.txt"), flags_text)
    return _train(config, info, chief)


def _train(config, info, chief):
  """train_and_evaluate once the run folder is this run's."""
  # The strategy comes first: MultiWorkerMirroredStrategy must exist before other TF work.
  strategy = make_strategy(config.strategy)
  keras.utils.set_random_seed(config.seed)
  policy = set_precision(config.mixed_precision)
  logging.info("precision policy %s", policy)

  train_splits = config_lib.train_splits_of(config)
  train_count = sum(info["splits"][split]["count"] for split in train_splits)
  if config.max_train_examples:
    train_count = min(train_count, config.max_train_examples)
  if "val" in train_splits:
    logging.warning("training on %s (%d faces): val is trained on, so its curves and its "
                    "final figures are not held out", "+".join(train_splits), train_count)
  steps_per_epoch = -(-train_count // config.batch_size)
  train_ds = pipeline.make_dataset(config.tfrecord_dir, ",".join(train_splits),
                                   config.batch_size, training=True, seed=config.seed,
                                   max_examples=config.max_train_examples)
  val_ds = pipeline.make_dataset(config.tfrecord_dir, "val", config.batch_size,
                                       training=False)
  val_batch = next(iter(pipeline.make_dataset(config.tfrecord_dir, "val", 8,
                                                    training=False, cache=False)))

  with strategy.scope():
    trainer = build_trainer(config, steps_per_epoch)
  if config.init_from:
    start_from(trainer.network, config)
  elif config.pretrained:
    pretrained_init.start(trainer.network, config)
  nan_guard = callbacks_lib.NaNGuard()
  if config.strategy == "multi_worker":
    _, worker, _ = distributed.task_info()
    callbacks = callbacks_lib.make_callbacks(config, trainer.network, val_batch, nan_guard, chief, worker)
    distributed.fit(trainer, strategy, lambda context: distributed_train_dataset(
        config, context), train_count // config.batch_size, config.epochs, val_ds, callbacks)
    print(f"final weights checksum: {distributed.weights_checksum(trainer.network):.10e}")
  else:
    callbacks = callbacks_lib.make_callbacks(config, trainer.network, val_batch, nan_guard)
    trainer.fit(train_ds, validation_data=val_ds, epochs=config.epochs, callbacks=callbacks,
                verbose=2, shuffle=False)  # the dataset shuffles itself
  if nan_guard.where:
    find = lambda kind: next((c for c in callbacks if isinstance(c, kind)), None)
    raise FloatingPointError(callbacks_lib.nan_stop_message(
        nan_guard.where, find(callbacks_lib.GuardedBackupAndRestore),
        find(callbacks_lib.BestNetworkCheckpoint), config.model_dir))

  if not chief:
    return {}
  trainer.network.load_weights(os.path.join(config.model_dir, run_folder.BEST_WEIGHTS))
  return finish(config, trainer.network)


def check_init_from(config):
  """Raises run_folder.RunFolderError naming --init_from when that run is unreadable, its
  kept weights are missing or damaged, or its network or its outputs' meaning differ from
  this run's (before anything is written)."""
  try:
    source_config = run_folder.read_config(config.init_from)
    run_folder.check_weights_file(os.path.join(config.init_from, run_folder.BEST_WEIGHTS))
  except run_folder.RunFolderError as e:
    raise run_folder.RunFolderError(f"--init_from={config.init_from}: {e}") from None
  for name in ("model", "normalisation"):
    if getattr(source_config, name) != getattr(config, name):
      raise run_folder.RunFolderError(
          f"--init_from={config.init_from} was trained with --{name}="
          f"{getattr(source_config, name)}, this run with --{name}={getattr(config, name)}: "
          "its weights cannot start this network")


def start_from(network, config):
  """Copies the kept network of the run config.init_from into `network`."""
  try:
    source, _ = run_folder.load_network(config.init_from)
  except run_folder.RunFolderError as e:
    raise run_folder.RunFolderError(f"--init_from={config.init_from}: {e}") from None
  network.set_weights(source.get_weights())
  logging.info("starting from the kept network of %s", config.init_from)


def distributed_train_dataset(config, context):
  """One worker's share of the training data: its own records, per-replica batches,
  repeated (every worker runs the same number of steps, as collectives require)."""
  return pipeline.make_dataset(
      config.tfrecord_dir, ",".join(config_lib.train_splits_of(config)),
      context.get_per_replica_batch_size(config.batch_size),
      training=True, seed=config.seed, drop_remainder=True,
      num_input_pipelines=context.num_input_pipelines,
      input_pipeline_id=context.input_pipeline_id,
      max_examples=config.max_train_examples).repeat()


def finish(config, network):
  """Evaluates the chosen weights on val (and test) and exports a SavedModel.

  A refining stage is evaluated on oracle boxes (around the true keypoints, label
  "oracle box"); with --coarse_model_dir the exported cascade is evaluated end to end.
  """
  predict = reports.network_predictor(network, Framing.of_config(config))
  train_splits = config_lib.train_splits_of(config)
  # "epochs" marks the run finished for run_guard.check_not_finished.
  results = {"trained_on": train_splits, "keep": config.keep, "epochs": config.epochs}
  splits = ["val", "test"] if config.evaluate_test else ["val"]
  oracle = config.augment.region == "keypoints"
  for split in splits:
    summary = reports.evaluate_split(
        predict, config.tfrecord_dir, split, os.path.join(config.model_dir, f"eval_{split}"),
        label=config.model + (" (oracle box)" if oracle else ""),
        extra={"framing": "oracle box" if oracle else "whole image",
               "held_out": split not in train_splits})
    print(reports.format_summary(summary) +
          ("" if summary["held_out"] else "  (trained on: not held out)"))
    results[split] = summary
  stages = [stage_of(network, config)]
  if config.coarse_model_dir:
    stages.insert(0, stage_of(*run_folder.load_network(config.coarse_model_dir)))
  if config.export and oracle and not config.coarse_model_dir:
    logging.warning("a refining stage without --coarse_model_dir is not exported")
  elif config.export:
    results["export"] = saved_model.export(
        stages, os.path.join(config.model_dir, "export"),
        metadata={"model": config.model, "coarse_model_dir": config.coarse_model_dir},
        warmup_images=run_folder.warmup_images(config.tfrecord_dir))
    print(f"exported SavedModel: {results['export']}")
    if len(stages) > 1:
      served = reports.saved_model_predictor(results["export"])
      for split in splits:
        summary = reports.evaluate_split(
            served, config.tfrecord_dir, split,
            os.path.join(config.model_dir, f"eval_cascade_{split}"), label="cascade",
            with_bytes=True, extra={"framing": "cascade, whole image in"})
        print("cascade " + reports.format_summary(summary))
        results[f"cascade_{split}"] = summary
  io_utils.write_json(os.path.join(config.model_dir, run_guard.RESULTS), results)
  hparams_log.write(config.model_dir, config_to_json(config), results, step=config.epochs)
  return results
