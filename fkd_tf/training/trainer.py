"""The Keras model that trains a keypoint network: augmentation inside the train step.

`KeypointTrainer` wraps a network ([N, 90, 90, 1] -> [N, 136]) and takes batches of
padded canvases straight from `data.pipeline`. Its train step augments on the device
that runs the step (GPU when there is one), so `fit`, callbacks and tf.distribute work as
usual while the host only decodes.
"""

import keras
import tensorflow as tf

from fkd_tf.core import augment, framing, geometry, metrics


class KeypointTrainer(keras.Model):
  """fit()/evaluate() on {"image", "image_size", "keypoints_px"} batches.

  Args:
    network: functional keras.Model from `fkd_tf.core.models`.
    augment_config: `augment.AugmentConfig` of the training-time changes.
    net_framing: the network's `framing.Framing` (its normalisation, and the frame the
      evaluation step uses).
    loss_fn: (keypoints_norm_true, keypoints_norm_pred) -> scalar.
    seed: seeds the augmentation stream (saved with the weights, so a resume continues it).
    nan_at_step: test hook; the loss of this optimizer step is made NaN (-1: never).
    jit_network: XLA-compile the network's forward and backward pass. The warp cannot be
      compiled (ImageProjectiveTransformV3 has no XLA kernel in TF 2.21), so the step as a
      whole never is; only this part of it.
  """

  def __init__(self, network, augment_config, net_framing, loss_fn, seed=0, nan_at_step=-1,
               jit_network=False, **kwargs):
    super().__init__(name="keypoint_trainer", **kwargs)
    self.network = network
    self.augment_config = augment_config
    self.framing = net_framing
    self.loss_fn = loss_fn
    self.nan_at_step = nan_at_step
    self._loss_and_gradients = (tf.function(self._loss_and_gradients_eager, jit_compile=True)
                                if jit_network else self._loss_and_gradients_eager)
    self.seed_generator = keras.random.SeedGenerator(seed, name="augment_seed")
    self.loss_tracker = keras.metrics.Mean(name="loss")
    self.nme_tracker = keras.metrics.Mean(name="nme_io")

  @property
  def metrics(self):
    return [self.loss_tracker, self.nme_tracker]

  def call(self, images, training=False):
    return self.network(images, training=training)

  def _next_seed(self):
    # Each replica draws its own augmentation from the shared stream.
    replica = tf.distribute.get_replica_context()
    replica_id = replica.replica_id_in_sync_group if replica else 0
    seed = tf.cast(self.seed_generator.next(), tf.int64)
    return seed + tf.cast(tf.stack([0, replica_id]), tf.int64)

  def train_step(self, batch):
    self.loss_tracker.update_state(self.update_on_batch(batch))
    return {"loss": self.loss_tracker.result()}

  def update_on_batch(self, batch):
    """Augments, steps the optimizer once and returns this replica's mean loss."""
    images_net, keypoints_net, _ = augment.augment_batch(
        batch["image"], batch["image_size"], batch["keypoints_px"], self._next_seed(),
        self.augment_config)
    target = framing.normalise(keypoints_net, self.framing.normalisation)
    loss, gradients = self._loss_and_gradients(images_net, target)
    self.optimizer.apply(gradients, self.network.trainable_variables)
    return loss

  def _loss_and_gradients_eager(self, images_net, target):
    with tf.GradientTape() as tape:
      prediction = tf.cast(self.network(images_net, training=True), tf.float32)
      loss = self.loss_fn(target, prediction)
      if self.network.losses:
        loss = loss + tf.add_n(self.network.losses)
      if self.nan_at_step >= 0:
        loss = tf.where(self.optimizer.iterations == self.nan_at_step, float("nan"), loss)
      # Gradients are summed over replicas, so each replica contributes its mean / count.
      replicas = tf.distribute.get_strategy().num_replicas_in_sync
      scaled = self.optimizer.scale_loss(loss / replicas)
    return loss, tape.gradient(scaled, self.network.trainable_variables)

  def evaluate_batch(self, batch):
    """Evaluation-frame loss (batch mean) and NME_io per face [N] of one batch."""
    regions = self.framing.regions(batch["image_size"], batch["keypoints_px"])
    keypoints_px, keypoints_norm, net_from_image = self.framing.predict_keypoints_px(
        self.network, batch["image"], regions)
    target = framing.normalise(geometry.transform_points(net_from_image, batch["keypoints_px"]),
                               self.framing.normalisation)
    loss = self.loss_fn(target, tf.cast(keypoints_norm, tf.float32))
    return loss, metrics.nme(keypoints_px, batch["keypoints_px"])

  def test_step(self, batch):
    loss, nme = self.evaluate_batch(batch)
    self.loss_tracker.update_state(loss)
    self.nme_tracker.update_state(nme)
    return {"loss": self.loss_tracker.result(), "nme_io": self.nme_tracker.result()}
