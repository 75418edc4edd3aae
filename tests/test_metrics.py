import numpy as np

from fkd_tf.core import metrics
import fakes


def test_nme_on_known_numbers():
  truth = (fakes.face_template() * 100.0)[np.newaxis].astype(np.float32)
  inter_ocular = np.linalg.norm(truth[0, 36] - truth[0, 45])  # 60 px
  shifted = truth + np.array([3.0, 4.0], np.float32)  # every point 5 px off
  np.testing.assert_allclose(metrics.nme(shifted, truth).numpy(), [5.0 / inter_ocular],
                             rtol=1e-6)
  box = np.sqrt(np.prod(truth[0].max(0) - truth[0].min(0)))
  np.testing.assert_allclose(metrics.nme(shifted, truth, "box").numpy(), [5.0 / box],
                             rtol=1e-6)


def test_failure_rate_and_auc():
  nmes = np.array([0.0, 0.05, 0.2, 0.1])
  assert metrics.failure_rate(nmes) == 0.25
  # Exact area: fractions under the curve -> mean of max(0, 1 - e / 0.1).
  assert abs(metrics.auc(nmes) - (1.0 + 0.5 + 0.0 + 0.0) / 4) < 1e-12
  thresholds, fractions = metrics.cumulative_curve(nmes, steps=100001)
  assert abs(np.trapezoid(fractions, thresholds) / 0.1 - metrics.auc(nmes)) < 1e-4
  assert metrics.auc([0.0]) == 1.0 and metrics.auc([0.5]) == 0.0
