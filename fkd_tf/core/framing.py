"""Pure batched framing between image pixels and the 90x90 net frame, both ways.

Into the frame: `frame_batch` (the deterministic evaluation / serving warp: rescale,
centre crop); out of it: network outputs -> keypoints in image pixels. Training's
validation, evaluation, serving and predict all call these, so the "original image ->
net frame" map and its inverse exist once.
"""

import dataclasses
from typing import Optional

import tensorflow as tf

from fkd_tf.core import geometry
from fkd_tf.core.keypoints import MIRROR_PERMUTATION, NET_SIZE, NORMALISATIONS, NUM_KEYPOINTS


@dataclasses.dataclass(frozen=True)
class Framing:
  """How a network sees a face: the one value training, evaluation, the served graph, the
  LiteRT path and the export metadata all take and store.

  rescale_size: the region's shorter side after rescaling, before the centred 90x90 crop.
  normalisation: what the network's outputs mean (a key of `keypoints.NORMALISATIONS`).
  region_margin: None frames the whole image (a first stage); a number frames a square of
    that many times the larger side of a keypoint box (a refining stage: the truth's in
    training, the previous stage's keypoints or a face box when served).
  original_rounding: whole-pixel sizes and offsets, as the original's numpy code framed
    (`geometry.frame_matrix`); such a stage is also served without the pre-filter.
  """
  rescale_size: float
  normalisation: str
  region_margin: Optional[float] = None
  original_rounding: bool = False

  @classmethod
  def of_config(cls, config):
    """The framing a `core.config.TrainConfig` trains (and so must be served) with."""
    settings = config.augment
    margin = settings.region_margin if settings.region == "keypoints" else None
    return cls(float(settings.rescale_size), config.normalisation, margin,
               settings.original_rounding)

  def to_json(self):
    """The export metadata's fields (`from_json` reads them back)."""
    return {"rescale_size": self.rescale_size, "normalisation": self.normalisation,
            "region_margin": self.region_margin, "original_rounding": self.original_rounding}

  @classmethod
  def from_json(cls, record):
    """A framing from `to_json`'s fields (exports older than original_rounding: False)."""
    return cls(float(record["rescale_size"]), record["normalisation"],
               record["region_margin"], bool(record.get("original_rounding", False)))

  def regions(self, image_size, keypoints_px):
    """The regions a batch is framed from: [N, 4] (x0, y0, x1, y1) image pixels."""
    if self.region_margin is not None:
      return geometry.square_around_points(keypoints_px, self.region_margin)
    return whole_image_regions(image_size)

  def predict_keypoints_px(self, network, images, regions):
    """`predict_keypoints_px` in this framing."""
    return predict_keypoints_px(network, images, regions, self.rescale_size,
                                self.normalisation, self.original_rounding)


def whole_image_regions(image_size):
  """[N, 2] int (height, width) -> [N, 4] float regions (0, 0, width, height)."""
  size = tf.cast(image_size, tf.float32)
  zeros = tf.zeros_like(size[:, 0])
  return tf.stack([zeros, zeros, size[:, 1], size[:, 0]], axis=-1)


def warp_images(images, net_from_image, size=NET_SIZE):
  """Resamples each image into the net frame with one bilinear projective warp.

  Args:
    images: [N, H, W, C] uint8 (0..255) or float ([0, 1]); zero padding beyond each
      image's true size is harmless because the fill outside is zero too.
    net_from_image: [N, 3, 3] from `geometry`.
  Returns:
    [N, size, size, C] float32 in [0, 1].
  """
  if images.dtype == tf.uint8:
    images = tf.cast(images, tf.float32) * (1.0 / 255.0)
  return tf.raw_ops.ImageProjectiveTransformV3(
      images=images,
      transforms=geometry.projective_transform_params(net_from_image),
      output_shape=tf.constant([size, size], tf.int32),
      fill_value=tf.constant(0.0, tf.float32),
      interpolation="BILINEAR",
      fill_mode="CONSTANT")


def frame_batch(images, regions, rescale_size, crop_fraction=None, original_rounding=False):
  """The deterministic evaluation / serving frame: rescale, centre crop, warp.

  original_rounding: whole-pixel sizes and crop offsets, as the original's numpy code
  (`geometry.frame_matrix`); a run trained so (AugmentConfig.original_rounding) is
  evaluated and served so.
  Returns:
    (images_net [N, 90, 90, C] float32, net_from_image [N, 3, 3]).
  """
  if crop_fraction is None:
    crop_fraction = tf.fill([tf.shape(regions)[0], 2], 0.5)
  net_from_image = geometry.frame_matrix(regions, crop_fraction, rescale_size,
                                         original_rounding=original_rounding)
  return warp_images(images, net_from_image), net_from_image


def normalise(keypoints_net, normalisation):
  """[N, 68, 2] net pixels -> [N, 136] what the network regresses."""
  offset, scale = NORMALISATIONS[normalisation]
  return tf.reshape((keypoints_net - offset) / scale, [-1, 2 * NUM_KEYPOINTS])


def denormalise(keypoints_norm, normalisation):
  """[N, 136] network output -> [N, 68, 2] net pixels."""
  offset, scale = NORMALISATIONS[normalisation]
  keypoints_norm = tf.cast(keypoints_norm, tf.float32)
  return tf.reshape(keypoints_norm * scale + offset, [-1, NUM_KEYPOINTS, 2])


def keypoints_net_of(network, images_net, normalisation, flip_average=False):
  """The network's keypoints in the net frame [N, 68, 2]; with flip_average, the mean of
  the prediction and the un-mirrored prediction on the mirrored images."""
  keypoints_net = denormalise(network(images_net, training=False), normalisation)
  if not flip_average:
    return keypoints_net
  mirrored = denormalise(network(tf.reverse(images_net, axis=[2]), training=False),
                         normalisation)
  unmirrored = tf.gather(mirrored, MIRROR_PERMUTATION, axis=1) * [-1.0, 1.0] + [NET_SIZE, 0.0]
  return (keypoints_net + unmirrored) / 2.0


def keypoints_px_from_net(keypoints_net, net_from_image):
  """[N, 68, 2] net-frame points -> pixels of the original images (the inverse frame)."""
  return geometry.transform_points(tf.linalg.inv(net_from_image), keypoints_net)


def keypoints_px_from_outputs(keypoints_norm, net_from_image, normalisation):
  """Network outputs [N, 136] -> [N, 68, 2] pixels of the original images."""
  return keypoints_px_from_net(denormalise(keypoints_norm, normalisation), net_from_image)


def predict_keypoints_px(network, images, regions, rescale_size, normalisation,
                         original_rounding=False):
  """Evaluation-frame prediction for a batch of canvases.

  Args:
    network: Keras model, [N, 90, 90, 1] -> [N, 136].
    images: [N, H, W, 1] uint8 or float canvas; regions: [N, 4] (x0, y0, x1, y1).
    original_rounding: frame as the original did (see `frame_batch`).
  Returns:
    (keypoints_px [N, 68, 2], keypoints_norm [N, 136], net_from_image [N, 3, 3]).
  """
  images_net, net_from_image = frame_batch(images, regions, rescale_size,
                                           original_rounding=original_rounding)
  keypoints_norm = network(images_net, training=False)
  keypoints_px = keypoints_px_from_outputs(keypoints_norm, net_from_image, normalisation)
  return keypoints_px, keypoints_norm, net_from_image
