"""tools.recover_stage: a folded, exported network back in training form, exactly."""

import keras
import pytest
import numpy as np

from fkd_tf.core import models
from fkd_tf.serving import fold
from tools import recover_stage


@pytest.mark.slow
def test_unfolding_an_export_gives_back_the_networks_outputs():
  keras.utils.set_random_seed(1)
  trained = models.build("mobilenet_050")
  rng = np.random.default_rng(0)
  for layer in trained.layers:  # batch norms with statistics, as after training
    if isinstance(layer, keras.layers.BatchNormalization):
      gamma, beta, mean, variance = layer.get_weights()
      layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.1, beta.shape),
                         rng.normal(0, 0.1, mean.shape), rng.uniform(0.5, 2, variance.shape)])
  exported = fold.inference_network(trained)
  restored = models.build("mobilenet_050")
  for name, weights in recover_stage.unfolded_weights(restored, exported.weights).items():
    restored.get_layer(name).set_weights(weights)
  images = rng.uniform(size=(4, 90, 90, 1)).astype(np.float32)
  expected = trained(images, training=False).numpy()
  np.testing.assert_allclose(restored(images, training=False).numpy(), expected, atol=1e-4)
  assert np.abs(expected).max() > 0.05  # a network that answers, not zeros


@pytest.mark.slow
def test_variables_of_another_architecture_are_refused():
  exported = fold.inference_network(models.build("tiny"))
  try:
    recover_stage.unfolded_weights(models.build("mobilenet_050"), exported.weights)
  except ValueError as e:
    assert "is --flagfile the one that trained this stage?" in str(e)
  else:
    raise AssertionError("a tiny network's variables were taken for mobilenet_050's")
