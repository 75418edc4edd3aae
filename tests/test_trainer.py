"""The train step (`KeypointTrainer.update_on_batch`) and the evaluation step, in-process."""

import keras
import pytest
import numpy as np
import tensorflow as tf

from fkd_tf.core import augment, framing, losses, models
from fkd_tf.data import pipeline
from fkd_tf.training import trainer as trainer_lib


def _trainer(seed=0, nan_at_step=-1):
  network = models.build("tiny")
  settings = augment.AugmentConfig(flip_prob=0.5)
  trainer = trainer_lib.KeypointTrainer(network, settings,
                                        framing.Framing(settings.rescale_size, "original"),
                                        losses.huber(1.0), seed=seed,
                                        nan_at_step=nan_at_step)
  trainer(tf.zeros([1, 90, 90, 1]))
  trainer.compile(optimizer=keras.optimizers.Adam(3e-3))
  trainer.optimizer.build(network.trainable_variables)
  return trainer


def _batch(tfrecord_dir):
  return next(iter(pipeline.make_dataset(tfrecord_dir, "train", 8, training=False)))


@pytest.mark.slow
def test_train_steps_lower_the_loss_of_a_batch(tfrecord_dir):
  trainer = _trainer()
  batch = _batch(tfrecord_dir)
  first, _ = trainer.evaluate_batch(batch)
  for _ in range(40):
    trainer.update_on_batch(batch)
  last, nme = trainer.evaluate_batch(batch)
  assert float(last) < 0.5 * float(first)
  assert nme.shape == (8,) and np.all(np.isfinite(nme.numpy()))
  assert int(trainer.optimizer.iterations) == 40


def test_the_augmentation_stream_is_seeded(tfrecord_dir):
  batch = _batch(tfrecord_dir)
  runs = []
  start = _trainer(seed=0).network.get_weights()
  for seed in (5, 5, 6):
    trainer = _trainer(seed=seed)
    trainer.network.set_weights(start)
    runs.append(float(trainer.update_on_batch(batch)))
  assert runs[0] == runs[1] != runs[2]


def test_nan_hook_poisons_only_its_step(tfrecord_dir):
  trainer = _trainer(nan_at_step=1)
  batch = _batch(tfrecord_dir)
  assert np.isfinite(float(trainer.update_on_batch(batch)))
  assert np.isnan(float(trainer.update_on_batch(batch)))
