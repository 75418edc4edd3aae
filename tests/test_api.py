"""The Python API: `fkd_tf.load(path).predict(images, boxes=None)`."""


import numpy as np
from PIL import Image
import pytest

import fakes
import fkd_tf
from fkd_tf.core import models
from fkd_tf.serving import saved_model
from fkd_tf.serving.module import Stage


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
  base = str(tmp_path_factory.mktemp("api") / "export")
  return saved_model.export([Stage(models.build("tiny"), 90.0, "centered")], base)


def _face_rgb():
  rng = np.random.default_rng(0)
  return rng.integers(0, 256, size=(70, 60, 3), dtype=np.uint8)


def test_every_input_form_gives_the_same_keypoints(export_dir, tmp_path):
  model = fkd_tf.load(export_dir)
  rgb = _face_rgb()
  path = tmp_path / "face.png"
  Image.fromarray(rgb).save(path)
  from_path = model.predict(str(path))
  assert from_path.shape == (1, 68, 2) and from_path.dtype == np.float32
  np.testing.assert_allclose(model.predict(path.read_bytes()), from_path, atol=1e-4)
  np.testing.assert_allclose(model.predict(rgb), from_path, atol=1e-4)
  rgba = np.concatenate([rgb, np.full((70, 60, 1), 255, np.uint8)], axis=-1)
  np.testing.assert_allclose(model.predict(rgba), from_path, atol=1e-4)
  gray = np.asarray(Image.fromarray(rgb).convert("L"))
  assert model.predict(gray).shape == (1, 68, 2)
  batch = model.predict(np.stack([rgb, rgb[::-1]]))
  assert batch.shape == (2, 68, 2)
  np.testing.assert_allclose(batch[0], from_path[0], atol=1e-4)
  assert model.predict([str(path), rgb]).shape == (2, 68, 2)


def test_boxes_frame_the_face(export_dir):
  model = fkd_tf.load(export_dir)
  image = fakes.encode(np.asarray(Image.fromarray(_face_rgb()).convert("L")), "PNG", "L")
  whole = model.predict(image)
  same = model.predict(image, boxes=[[0, 0, 60, 70]])
  np.testing.assert_allclose(same, whole, atol=1e-3)
  boxed = model.predict([image, image], boxes=[[0, 0, 60, 70], [10, 10, 50, 60]])
  assert boxed.shape == (2, 68, 2)
  assert np.abs(boxed[1] - boxed[0]).max() > 0.1  # another box, another frame


def test_bad_input_is_named(export_dir):
  model = fkd_tf.load(export_dir)
  with pytest.raises(ValueError, match=r"boxes: 2 boxes for 1 images"):
    model.predict(_face_rgb(), boxes=[[0, 0, 10, 10], [0, 0, 5, 5]])
  with pytest.raises(ValueError, match=r"images\[0\]: expected uint8"):
    model.predict(_face_rgb().astype(np.float32))
  with pytest.raises(ValueError, match=r"images\[1\]: expected \(H, W\)"):
    model.predict([_face_rgb(), np.zeros((4, 4, 5), np.uint8)])
