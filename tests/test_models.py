import keras
import numpy as np
import pytest

from fkd_tf.core import models


def test_ppbnet_matches_the_original():
  network = models.ppbnet()
  assert network.count_params() == 231_080
  assert network.output_shape == (None, 136)
  assert any(isinstance(layer, keras.layers.Concatenate) for layer in network.layers)
  assert network.get_layer("fuse").output.shape == (None, 44, 44, 64)
  assert network.get_layer("flatten").output.shape == (None, 4 * 4 * 64)
  convs = [l for l in network.layers if isinstance(l, keras.layers.Conv2D)]
  assert [l.kernel_size for l in convs] == [(3, 3), (1, 1), (3, 3), (2, 2), (3, 3)]
  assert all(l.padding == "valid" for l in convs)
  outputs = network.predict(np.random.default_rng(0).uniform(size=(3, 90, 90, 1)), verbose=0)
  assert outputs.shape == (3, 136)
  assert outputs.min() >= -1.7581  # the SELU head's floor, as in the original


def test_fknet_shapes_and_linear_head():
  network = models.fknet()
  assert network.output_shape == (None, 136)
  assert network.get_layer("keypoints").activation.__name__ == "linear"


def test_unknown_model_is_named():
  with pytest.raises(ValueError, match="unknown model 'resnet9000'"):
    models.build("resnet9000")


def test_forward_flops_of_ppbnet():
  # The speed issue's figure: 156.6 MFLOP per image forward.
  assert abs(models.forward_flops(models.ppbnet()) / 1e6 - 156.6) < 0.1


def test_ppbnet_torch_biases_are_uniform_within_one_over_sqrt_fan_in():
  keras.utils.set_random_seed(0)
  network = models.ppbnet(bias_init="torch")
  # fan_in = input channels x kernel area: conv2 sees the fused 64 channels, the head 1024.
  fan_ins = {"conv1": 9, "conv1x1": 32, "conv2": 576, "conv3": 256, "conv4": 576,
             "keypoints": 1024}
  scaled = []
  for name, fan_in in fan_ins.items():
    bias = network.get_layer(name).bias.numpy()
    bound = fan_in ** -0.5
    assert np.abs(bias).max() <= bound and np.abs(bias).max() > 0.8 * bound, name
    scaled.append(bias / bound)
  scaled = np.concatenate(scaled)  # 392 draws of U(-1, 1): std 1/sqrt(3) = 0.577
  assert len(scaled) == 392
  assert abs(scaled.std() - 3 ** -0.5) < 0.05 and abs(scaled.mean()) < 0.1
  assert 0.4 < np.mean(np.abs(scaled) < 0.5) < 0.6
  # Keras' default stays zero; kernels are PyTorch's either way.
  assert not models.ppbnet().get_layer("conv1").bias.numpy().any()
  with pytest.raises(ValueError, match="bias_init='ones'"):
    models.ppbnet(bias_init="ones")


def test_facemesh_keeps_the_mesh_network_and_fuses_two_scales():
  network = models.build("facemesh_160")
  assert network.output_shape == (None, 136)
  assert network.get_layer("mesh_input").output.shape == (None, 160, 160, 1)
  # The mesh's 3x3 'valid' output convolution needs the final 3x3 map, at 160 px as at 192.
  assert network.get_layer("p_re_lu_19").output.shape == (None, 3, 3, 32)
  assert network.get_layer("conv2d_20").output.shape == (None, 1, 1, 1404)
  assert network.get_layer("fuse").output.shape == (None, 1404 + 128)
  # The 192 px network without its face-flag branch, head included: 64.7 MFLOP; 160 px: 0.71x.
  assert abs(models.forward_flops(models.build("facemesh_192")) / 1e6 - 64.65) < 0.01
  assert abs(models.forward_flops(network) / 1e6 - 45.59) < 0.01
