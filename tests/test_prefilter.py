"""Large faces are pre-filtered when framing shrinks them by more than 2x (litert.gray_frame)."""

import os

import numpy as np
from PIL import Image
import pytest

from fkd_tf.serving import litert


def _checkered_upscale(image, factor, amplitude=40):
  """Each pixel as a factor x factor block, with a +-amplitude checkerboard finer than the
  net frame's pixels: a block's mean is the original pixel, a point sample is not."""
  big = np.repeat(np.repeat(image.astype(np.int16), factor, axis=0), factor, axis=1)
  rows, cols = np.indices(big.shape[:2])
  checker = np.where((rows + cols) % 2 == 0, amplitude, -amplitude)
  if big.ndim == 3:
    checker = checker[..., np.newaxis]
  return np.clip(big + checker, 0, 255).astype(np.uint8)


def test_a_4x_upscaled_image_frames_as_the_original(monkeypatch):
  rng = np.random.default_rng(0)
  image = rng.integers(60, 196, (130, 110), dtype=np.uint8)  # no clipping of the checker
  region = (3.3, 7.1, 103.3, 117.1)  # scale 0.9 at 90: no pre-filter at 1x, 4x4 at 4x
  frame, _ = litert.gray_frame(image, region, 90.0)
  big = _checkered_upscale(image, 4)
  big_frame, _ = litert.gray_frame(big, tuple(4 * v for v in region), 90.0)
  np.testing.assert_allclose(big_frame, frame, atol=2.5 / 255)
  monkeypatch.setattr(litert, "prefilter_factor", lambda scale, length: 1)
  aliased, _ = litert.gray_frame(big, tuple(4 * v for v in region), 90.0)
  assert np.abs(aliased - frame).max() > 20 / 255  # two taps alone see the checker


def test_prefilter_factor():
  assert litert.prefilter_factor(0.6, 1000) == 1
  assert litert.prefilter_factor(0.49, 1000) == 2
  assert litert.prefilter_factor(0.24, 1000) == 4
  assert litert.prefilter_factor(0.01, 30) == 30  # never more than the image


def test_keypoints_of_a_4x_upscaled_real_face_match_the_original(real_dir, monkeypatch):
  import fkd_tf  # pylint: disable=g-import-not-at-top
  from fkd_tf.serving import versions  # pylint: disable=g-import-not-at-top
  if not os.path.isdir(versions.SHIPPED_MODEL):
    pytest.skip("no shipped model in this checkout")
  line = open(os.path.join(real_dir, "test_frames_keypoints.csv")).readlines()[5]
  name, *values = line.split(",")
  rgb = np.asarray(Image.open(os.path.join(real_dir, "test", name)).convert("RGB"))
  truth = np.array(values, float).reshape(68, 2)
  box = np.concatenate([truth.min(0), truth.max(0)])
  model = fkd_tf.load()
  small = model.predict(rgb, boxes=[box])[0]
  big = _checkered_upscale(rgb, 4)
  error = lambda points: np.linalg.norm(points / 4 - small, axis=1).mean()
  filtered = error(model.predict(big, boxes=[4 * box])[0])
  monkeypatch.setattr(litert, "prefilter_factor", lambda scale, length: 1)
  aliased = error(model.predict(big, boxes=[4 * box])[0])
  assert filtered < 0.5  # original pixels
  assert aliased > 2 * filtered
