import numpy as np

from fkd_tf.core import losses


def smooth_l1(a, b, beta=1.0):
  d = np.abs(a - b)
  return np.mean(np.where(d < beta, 0.5 * d ** 2 / beta, d - 0.5 * beta))


def test_huber_is_pytorch_smooth_l1_at_delta_one():
  rng = np.random.default_rng(0)
  a, b = rng.normal(size=(4, 136)).astype(np.float32), rng.normal(size=(4, 136)).astype(
      np.float32) * 2
  np.testing.assert_allclose(float(losses.huber(1.0)(a, b)), smooth_l1(a, b), rtol=1e-5)


def test_wing_is_continuous_and_logarithmic_near_zero():
  loss = losses.wing(width=0.1, curvature=0.02)
  at = lambda e: float(loss(np.zeros((1, 1), np.float32), np.full((1, 1), e, np.float32)))
  assert abs(at(0.1 - 1e-6) - at(0.1 + 1e-6)) < 1e-4
  assert at(0.0) == 0.0
  np.testing.assert_allclose(at(0.01), 0.1 * np.log1p(0.5), rtol=1e-5)
  np.testing.assert_allclose(at(1.0) - at(0.5), 0.5, rtol=1e-5)  # linear far away
