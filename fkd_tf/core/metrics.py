"""Landmark error metrics (tensor functions, batched) and their summaries."""

import numpy as np
import tensorflow as tf

from fkd_tf.core.keypoints import LEFT_EYE_OUTER, RIGHT_EYE_OUTER

FAILURE_THRESHOLD = 0.10


def point_errors(pred_px, true_px):
  """Euclidean error of each point: [N, 68, 2] x2 -> [N, 68] (same units as inputs)."""
  return tf.norm(tf.cast(pred_px, tf.float32) - tf.cast(true_px, tf.float32), axis=-1)


def inter_ocular(true_px):
  """Distance between the outer eye corners (points 36 and 45) of the truth: [N]."""
  return tf.norm(true_px[:, LEFT_EYE_OUTER] - true_px[:, RIGHT_EYE_OUTER], axis=-1)


def box_size(true_px):
  """sqrt(width * height) of the truth's keypoint box: [N]."""
  extent = tf.reduce_max(true_px, axis=1) - tf.reduce_min(true_px, axis=1)
  return tf.sqrt(extent[:, 0] * extent[:, 1])


def nme(pred_px, true_px, normaliser="inter_ocular"):
  """Normalised mean error per face: [N]."""
  norm = {"inter_ocular": inter_ocular, "box": box_size}[normaliser](true_px)
  return tf.reduce_mean(point_errors(pred_px, true_px), axis=-1) / norm


def failure_rate(nmes, threshold=FAILURE_THRESHOLD):
  """Share of faces whose NME exceeds the threshold."""
  return float(np.mean(np.asarray(nmes) > threshold))


def auc(nmes, threshold=FAILURE_THRESHOLD):
  """Area under the cumulative error curve on [0, threshold], divided by threshold.

  Integral of P(e <= t) dt over [0, T] equals E[max(0, T - e)], which is exact and needs
  no grid.
  """
  nmes = np.asarray(nmes, np.float64)
  return float(np.mean(np.maximum(0.0, threshold - nmes)) / threshold)


def cumulative_curve(nmes, threshold=FAILURE_THRESHOLD, steps=101):
  """(thresholds, fraction of faces with NME <= threshold) for plotting."""
  thresholds = np.linspace(0.0, threshold, steps)
  nmes = np.sort(np.asarray(nmes))
  return thresholds, np.searchsorted(nmes, thresholds, side="right") / max(len(nmes), 1)
