"""Losses on normalised keypoints [N, 136]; each returns the batch mean (a scalar).

Plain functions, not keras.losses.Loss objects: those divide by the number of replicas
themselves under tf.distribute, while the trainer scales every loss in one place.
"""

import math

import keras
import tensorflow as tf


def huber(delta=1.0):
  """PyTorch's SmoothL1Loss(beta=delta) with mean reduction is Keras' Huber(delta)/delta;
  at delta 1 (the original) they are the same."""
  def loss(keypoints_true, keypoints_pred):
    return tf.reduce_mean(keras.losses.huber(tf.cast(keypoints_true, tf.float32),
                                             tf.cast(keypoints_pred, tf.float32), delta))

  return loss


def wing(width=0.1, curvature=0.02):
  """Wing loss (Feng et al. 2018, arXiv:1711.06753), in normalised units.

  width * log(1 + |x| / curvature) below `width`, |x| - C above, C making it continuous.
  Defaults are the paper's w=10, eps=2 pixels scaled to the 'centered' normalisation of
  a 90 px frame (1 unit = 45 px) at roughly the paper's 1/10 frame ratio.
  """
  constant = width - width * math.log(1.0 + width / curvature)

  def loss(keypoints_true, keypoints_pred):
    error = tf.abs(tf.cast(keypoints_true, tf.float32) - tf.cast(keypoints_pred, tf.float32))
    small = width * tf.math.log1p(error / curvature)
    return tf.reduce_mean(tf.where(error < width, small, error - constant))

  return loss


def l1():
  return lambda y_true, y_pred: tf.reduce_mean(
      tf.abs(tf.cast(y_true, tf.float32) - tf.cast(y_pred, tf.float32)))


LOSSES = {"huber": huber, "wing": wing, "l1": l1}
