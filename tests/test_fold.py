"""The export's inference form of a network: batch norm folded, weights optionally float16."""

import keras
import numpy as np
import pytest

from fkd_tf.core import models
from fkd_tf.serving import fold


def _with_trained_statistics(network, seed=0):
  """Batch norms with the non-trivial statistics a trained network has (fresh ones are an
  identity, which would fold to nothing visible)."""
  rng = np.random.default_rng(seed)
  for layer in network.layers:
    if isinstance(layer, keras.layers.BatchNormalization):
      gamma, beta, mean, variance = layer.get_weights()
      layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.3, beta.shape),
                         rng.normal(0, 0.3, mean.shape), rng.uniform(0.5, 1.5, variance.shape)])
  return network


def _batch_norms(network):
  return [layer for layer in network.layers if isinstance(layer, keras.layers.BatchNormalization)]


@pytest.mark.parametrize("name", ["mobilenet_050", "fknet"])
def test_folding_keeps_the_outputs_and_drops_every_batch_norm(name):
  network = _with_trained_statistics(models.build(name))
  before = [w.copy() for w in network.get_weights()]
  images = np.random.default_rng(1).uniform(size=(3, 90, 90, 1)).astype(np.float32)
  folded = fold.inference_network(network)
  assert folded.name == network.name and _batch_norms(network) and not _batch_norms(folded)
  np.testing.assert_allclose(folded(images).numpy(), network(images, training=False).numpy(),
                             atol=1e-5)
  for kept, now in zip(before, network.get_weights()):  # the original is untouched
    np.testing.assert_array_equal(kept, now)
  # Each folded convolution changed (its kernel took the batch norm's scale).
  stem = folded.get_layer("stem" if name == "mobilenet_050" else "stage1_conv1")
  assert stem.use_bias and not np.allclose(stem.kernel.numpy(),
                                           network.get_layer(stem.name).kernel.numpy())


def test_float16_rounds_every_weight_and_moves_outputs_little():
  network = _with_trained_statistics(models.build("mobilenet_050"))
  half = fold.inference_network(network, float16=True)
  for weight in half.get_weights():
    np.testing.assert_array_equal(weight, weight.astype(np.float16).astype(np.float32))
  images = np.random.default_rng(2).uniform(size=(3, 90, 90, 1)).astype(np.float32)
  change = np.abs(half(images).numpy() - network(images, training=False).numpy()).max()
  assert 0 < change < 2e-3  # in units of the net's half-width: under 0.1 px of 90


def test_a_convolution_read_by_more_than_its_batch_norm_is_not_folded():
  images = keras.Input((8, 8, 1))
  conv = keras.layers.Conv2D(4, 3, padding="same", use_bias=False, name="conv")(images)
  normed = keras.layers.BatchNormalization(name="conv_bn")(conv)
  other = keras.layers.Conv2D(2, 3, padding="same", use_bias=False, name="plain")(images)
  plain_bn = keras.layers.BatchNormalization(name="plain_bn")(other)
  outputs = keras.layers.Concatenate()([normed, conv, plain_bn])  # conv read twice
  network = _with_trained_statistics(keras.Model(images, outputs, name="branchy"))
  folded = fold.inference_network(network)
  assert [layer.name for layer in _batch_norms(folded)] == ["conv_bn"]
  x = np.random.default_rng(3).uniform(size=(2, 8, 8, 1)).astype(np.float32)
  np.testing.assert_allclose(folded(x).numpy(), network(x, training=False).numpy(), atol=1e-5)
