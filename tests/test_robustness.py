"""The robustness check's conditions: repeatable, and keypoints that follow the picture."""

import numpy as np
import pytest
from PIL import Image

from fkd_tf.evaluation import robustness


def _dot_face(size=160):
  """A black image with a white 3x3 dot at each of a few 'keypoints' (the rest repeat)."""
  rng = np.random.default_rng(0)
  spots = rng.uniform(45, 115, size=(5, 2)).round() + 0.5  # pixel centres
  keypoints = np.concatenate([spots, np.repeat(spots[:1], 63, axis=0)])
  pixels = np.zeros((size, size), np.uint8)
  for x, y in spots:
    pixels[int(y) - 1:int(y) + 2, int(x) - 1:int(x) + 2] = 255
  return Image.fromarray(pixels), keypoints, spots


@pytest.mark.parametrize("seed", [0, 1])
def test_rotated_keypoints_land_on_the_rotated_dots(seed):
  image, keypoints, spots = _dot_face()
  rotated, moved = robustness.changed_face(image, keypoints, "rotation", seed)
  for x, y in moved[:5]:
    # The dot's centre of brightness near the moved point lies within half a pixel of it.
    y0, x0 = int(y) - 4, int(x) - 4
    window = rotated[y0:y0 + 9, x0:x0 + 9].astype(float)
    rows, cols = np.mgrid[0:9, 0:9] + 0.5
    assert window.max() > 60
    centre = (x0 + (window * cols).sum() / window.sum(), y0 + (window * rows).sum() / window.sum())
    assert np.hypot(centre[0] - x, centre[1] - y) < 0.5
  assert np.abs(moved[:5] - spots).max() > 5  # it did turn


def test_conditions_are_repeatable_and_keep_geometry_where_they_should():
  image, keypoints, _ = _dot_face()
  for condition in robustness.CONDITIONS:
    first, points = robustness.changed_face(image, keypoints, condition, 7)
    again, _ = robustness.changed_face(image, keypoints, condition, 7)
    np.testing.assert_array_equal(first, again)
    assert first.shape == (160, 160) and first.dtype == np.uint8
    if condition != "rotation":
      np.testing.assert_array_equal(points, keypoints)
    assert np.abs(first.astype(int) - np.asarray(image, int)).sum() > 0, condition
  with pytest.raises(ValueError, match="condition 'snow'"):
    robustness.changed_face(image, keypoints, "snow", 0)


def test_evaluate_conditions_scores_a_perfect_and_a_shifted_predictor():
  rng = np.random.default_rng(1)
  keypoints = rng.uniform(30, 90, size=(68, 2))
  keypoints[36], keypoints[45] = (40, 50), (80, 50)  # eyes 40 px apart
  image = Image.fromarray(rng.integers(0, 255, (120, 120), dtype=np.uint8))
  faces = [(image, keypoints), (image, keypoints + [3, 0])]
  for condition in ("blur", "rotation"):
    truth = [robustness.changed_face(img, kp, condition, i)[1]
             for i, (img, kp) in enumerate(faces)]
    perfect = robustness.evaluate_conditions(faces, lambda images: np.stack(truth),
                                             [condition])[condition]
    shifted = robustness.evaluate_conditions(faces, lambda images: np.stack(truth) + [4, 0],
                                             [condition])[condition]
    assert perfect["nme_io"] < 1e-3 and perfect["faces"] == 2 and perfect["auc10"] > 0.999
    # 4 px over a 40 px eye distance (rotation keeps distances): 10 %.
    assert abs(shifted["nme_io"] - 10.0) < 1e-3
