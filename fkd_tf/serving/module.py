"""The served module: encoded image bytes in, keypoints in image pixels out.

The serving graph decodes and preprocesses with the very functions evaluation uses
(`data.decode.decode_gray`, `core.framing`), one image at a time so a batch may mix
sizes and formats. `serving.saved_model` writes it for TF Serving.
"""

import dataclasses
from typing import Optional

import tensorflow as tf

from fkd_tf.core import framing, geometry
from fkd_tf.core.keypoints import NET_SIZE, NUM_KEYPOINTS
from fkd_tf.data.decode import decode_gray


@dataclasses.dataclass
class Stage:
  """One network of the served model and the framing it was trained with.

  region_margin: None for the first stage (framed on the whole image or the given box);
  for a refining stage, the square around the previous stage's keypoints.
  original_rounding: frame in whole pixels as the original did (`core.geometry`); False
  for stages made before the option existed.
  """
  network: object
  rescale_size: float
  normalisation: str
  region_margin: Optional[float] = None
  flip_average: bool = False  # also run on the mirrored frame and average
  original_rounding: bool = False


class KeypointServer(tf.Module):
  """The exported module: one network, or a coarse-to-fine cascade, with its framing."""

  def __init__(self, stages):
    super().__init__(name="keypoint_server")
    self.stages = list(stages)
    self.networks = [stage.network for stage in self.stages]  # tracked for saving

  @staticmethod
  def _frame_one(image_bytes, box, rescale_size, original_rounding):
    image = decode_gray(image_bytes, name="image_bytes")
    size = tf.cast(tf.shape(image)[:2], tf.float32)
    whole = tf.stack([0.0, 0.0, size[1], size[0]])
    region = tf.where(tf.reduce_any(box != 0.0), box, whole)
    # A box must have a size and overlap its image; anything else would frame nothing.
    valid = tf.reduce_all([region[2] > region[0], region[3] > region[1], region[0] < size[1],
                           region[1] < size[0], region[2] > 0.0, region[3] > 0.0])
    check = tf.debugging.Assert(valid, ["boxes: a box (x0, y0, x1, y1) is empty or lies "
                                        "outside its image; box:", region, "image (h, w):",
                                        size])
    with tf.control_dependencies([check]):
      region = tf.identity(region)
    images_net, net_from_image = framing.frame_batch(
        image[tf.newaxis], region[tf.newaxis], rescale_size,
        original_rounding=original_rounding)
    return images_net[0], net_from_image[0]

  def _run_stage(self, stage, image_bytes, regions):
    images_net, net_from_image = tf.map_fn(
        lambda args: self._frame_one(args[0], args[1], stage.rescale_size,
                                     stage.original_rounding),
        (image_bytes, regions),
        fn_output_signature=(tf.TensorSpec([NET_SIZE, NET_SIZE, 1], tf.float32),
                             tf.TensorSpec([3, 3], tf.float32)))
    keypoints_net = framing.keypoints_net_of(stage.network, images_net, stage.normalisation,
                                               stage.flip_average)
    return framing.keypoints_px_from_net(keypoints_net, net_from_image)

  def _keypoints(self, image_bytes, boxes):
    def run():
      keypoints_px = self._run_stage(self.stages[0], image_bytes, boxes)
      for stage in self.stages[1:]:
        regions = geometry.square_around_points(keypoints_px, stage.region_margin)
        keypoints_px = self._run_stage(stage, image_bytes, regions)
      return keypoints_px

    # An empty request gets an empty answer (convolutions reject a batch of zero on CPU).
    keypoints_px = tf.cond(tf.size(image_bytes) > 0, run,
                           lambda: tf.zeros([0, NUM_KEYPOINTS, 2], tf.float32))
    return {"keypoints": keypoints_px}

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
  def serve_bytes(self, image_bytes):
    """Whole images: keypoints [N, 68, 2] in each image's pixels."""
    return self._keypoints(image_bytes, tf.zeros([tf.shape(image_bytes)[0], 4]))

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes"),
                                tf.TensorSpec([None, 4], tf.float32, name="boxes")])
  def serve_bytes_with_boxes(self, image_bytes, boxes):
    """Face boxes (x0, y0, x1, y1) in pixels; an all-zero box means the whole image."""
    return self._keypoints(image_bytes, boxes)

  @tf.function(input_signature=[
      tf.TensorSpec([None, NET_SIZE, NET_SIZE, 1], tf.float32, name="images")])
  def serve_preprocessed(self, images):
    """Already-framed [N, 90, 90, 1] images in [0, 1]: the (last) network's output."""
    return {"keypoints_norm": tf.reshape(self.stages[-1].network(images, training=False),
                                         [-1, 2 * NUM_KEYPOINTS])}


def stage_of(network, config):
  """The served stage of a trained network, framed as its `core.config.TrainConfig` says."""
  margin = config.augment.region_margin if config.augment.region == "keypoints" else None
  return Stage(network, config.augment.rescale_size, config.normalisation, margin,
               original_rounding=config.augment.original_rounding)
