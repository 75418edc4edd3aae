"""Batched, in-graph preprocessing: one projective warp per image, photometric changes.

Everything here takes whole batches and uses only ops with CPU and GPU kernels (no
decode, no string op, no py_function), so the trainer runs it inside its train step, on
the accelerator when there is one. Evaluation and serving call `framing.frame_batch`,
the same warp with the identity augmentation, so all paths preprocess alike.
"""

import math

import tensorflow as tf

from fkd_tf.core import framing, geometry
# The settings live in a module without TensorFlow, so that a command's --help (its flags
# are generated from them) needs none; `augment.AugmentConfig` stays their name here.
from fkd_tf.core.augment_config import AugmentConfig  # pylint: disable=unused-import
from fkd_tf.core.keypoints import MIRROR_PERMUTATION, NET_SIZE


def regions_for(image_size, keypoints_px, config):
  """The regions a batch is framed from: [N, 4] (x0, y0, x1, y1) image pixels."""
  if config.region == "keypoints":
    return geometry.square_around_points(keypoints_px, config.region_margin)
  return framing.whole_image_regions(image_size)


def _uniform(seed, batch_size, low, high):
  return tf.random.stateless_uniform([batch_size], seed, low, high)


def _bernoulli(seed, batch_size, prob):
  return tf.random.stateless_uniform([batch_size], seed) < prob


def random_net_from_image(seed, regions, config):
  """Draws one geometric augmentation per image, folded into a single matrix.

  Returns:
    (net_from_image [N, 3, 3], flip [N] bool).
  """
  batch_size = tf.shape(regions)[0]
  seeds = tf.random.experimental.stateless_split(seed, 6)
  if config.random_crop:
    crop_fraction = tf.random.stateless_uniform([batch_size, 2], seeds[0])
  else:
    crop_fraction = tf.fill([batch_size, 2], 0.5)
  base = geometry.frame_matrix(regions, crop_fraction, config.rescale_size,
                               original_rounding=config.original_rounding)
  max_angle = math.radians(config.max_rotation_deg)
  # Scale is drawn log-uniformly so that zooming in and out are equally likely.
  flip = _bernoulli(seeds[5], batch_size, config.flip_prob)
  log_scale = _uniform(seeds[1], batch_size, math.log(config.min_scale),
                       math.log(config.max_scale))
  similarity = geometry.similarity_about_centre(
      scale=tf.exp(log_scale),
      angle=_uniform(seeds[2], batch_size, -max_angle, max_angle),
      shift_x=_uniform(seeds[3], batch_size, -config.max_shift, config.max_shift),
      shift_y=_uniform(seeds[4], batch_size, -config.max_shift, config.max_shift),
      flip=flip)
  return tf.matmul(similarity, base), flip


def mirror_keypoints(keypoints, flip):
  """Relabels left/right points of mirrored faces: [N, 68, 2], [N] bool -> [N, 68, 2]."""
  mirrored = tf.gather(keypoints, MIRROR_PERMUTATION, axis=1)
  return tf.where(flip[:, tf.newaxis, tf.newaxis], mirrored, keypoints)


def augment_geometry(images, regions, keypoints_px, seed, config):
  """Random crop, similarity and flip of images and keypoints alike, in one warp.

  Args:
    images: [N, H, W, C] uint8 or float canvas.
    regions: [N, 4] (x0, y0, x1, y1) image pixels the crop is taken from.
    keypoints_px: [N, 68, 2] original image pixels.
    seed: [2] int, for stateless random ops.
  Returns:
    (images_net [N, 90, 90, C], keypoints_net [N, 68, 2], net_from_image [N, 3, 3]).
  """
  net_from_image, flip = random_net_from_image(seed, regions, config)
  images_net = framing.warp_images(images, net_from_image)
  keypoints_net = geometry.transform_points(net_from_image, keypoints_px)
  return images_net, mirror_keypoints(keypoints_net, flip), net_from_image


def _gaussian_kernel(sigma):
  radius = max(1, int(math.ceil(2 * sigma)))
  taps = tf.range(-radius, radius + 1, dtype=tf.float32)
  weights = tf.exp(-0.5 * (taps / sigma) ** 2)
  weights = weights / tf.reduce_sum(weights)
  return tf.tensordot(weights, weights, axes=0)[:, :, tf.newaxis, tf.newaxis]


def photometric(images, seed, config):
  """Per-image gamma, contrast, brightness, blur and erasing; [N, S, S, 1] in [0, 1]."""
  batch_size = tf.shape(images)[0]
  seeds = tf.random.experimental.stateless_split(seed, 9)
  per_image = lambda v: v[:, tf.newaxis, tf.newaxis, tf.newaxis]
  if config.gamma > 0:
    exponent = tf.exp(_uniform(seeds[0], batch_size, -config.gamma, config.gamma))
    images = tf.pow(tf.clip_by_value(images, 0.0, 1.0), per_image(exponent))
  if config.contrast > 0:
    factor = _uniform(seeds[1], batch_size, 1.0 - config.contrast, 1.0 + config.contrast)
    mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
    images = (images - mean) * per_image(factor) + mean
  if config.brightness > 0:
    images = images + per_image(
        _uniform(seeds[2], batch_size, -config.brightness, config.brightness))
  if config.blur_prob > 0:
    blurred = tf.nn.conv2d(images, _gaussian_kernel(config.blur_sigma), 1, "SAME")
    images = tf.where(per_image(_bernoulli(seeds[3], batch_size, config.blur_prob)),
                      blurred, images)
  if config.erase_prob > 0:
    images = _random_erase(images, seeds[4:9], config)
  return tf.clip_by_value(images, 0.0, 1.0)


def _random_erase(images, seeds, config):
  """Fills one random rectangle per chosen image with a random grey level."""
  batch_size = tf.shape(images)[0]
  side = tf.cast(tf.shape(images)[1], tf.float32)
  max_fraction = config.erase_max_fraction
  height = _uniform(seeds[0], batch_size, 0.1 * max_fraction, max_fraction) * side
  width = _uniform(seeds[1], batch_size, 0.1 * max_fraction, max_fraction) * side
  top = _uniform(seeds[2], batch_size, 0.0, 1.0) * (side - height)
  left = _uniform(seeds[3], batch_size, 0.0, 1.0) * (side - width)
  centres = tf.range(side) + 0.5
  rows = (centres[tf.newaxis] >= top[:, tf.newaxis]) & (
      centres[tf.newaxis] < (top + height)[:, tf.newaxis])
  cols = (centres[tf.newaxis] >= left[:, tf.newaxis]) & (
      centres[tf.newaxis] < (left + width)[:, tf.newaxis])
  inside = rows[:, :, tf.newaxis] & cols[:, tf.newaxis, :]
  chosen = _bernoulli(seeds[4], batch_size, config.erase_prob)
  inside = inside & chosen[:, tf.newaxis, tf.newaxis]
  # Its own stream: drawn from `chosen`'s seed, the grey level of an erased patch was
  # that image's Bernoulli draw, always below erase_prob (near black at 0.2).
  fill = tf.random.stateless_uniform([batch_size, 1, 1],
                                     tf.random.experimental.stateless_fold_in(seeds[4], 1))
  return tf.where(inside[..., tf.newaxis], fill[..., tf.newaxis], images)


def augment_batch(images, image_size, keypoints_px, seed, config):
  """The whole training-time preprocessing of a batch of padded canvases.

  Args:
    images: [N, H, W, 1] uint8 canvas; image_size: [N, 2] int (height, width);
    keypoints_px: [N, 68, 2]; seed: [2] int.
  Returns:
    (images_net [N, 90, 90, 1] float32 in [0, 1], keypoints_net [N, 68, 2],
     net_from_image [N, 3, 3]).
  """
  geometry_seed, photometric_seed = tf.unstack(
      tf.random.experimental.stateless_split(seed, 2))
  images_net, keypoints_net, net_from_image = augment_geometry(
      images, regions_for(image_size, keypoints_px, config), keypoints_px, geometry_seed,
      config)
  return photometric(images_net, photometric_seed, config), keypoints_net, net_from_image
