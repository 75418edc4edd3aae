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

  region_margin: None for a whole-image stage (framed on the whole image, or on a given
  box when the model has no refining stage); for a refining stage, the side of its square
  over the larger side of a keypoint box: the previous stage's keypoints, or a face box.
  original_rounding: frame in whole pixels as the original did (`core.geometry`); False
  for stages made before the option existed.
  """
  network: object
  rescale_size: float
  normalisation: str
  region_margin: Optional[float] = None
  flip_average: bool = False  # also run on the mirrored frame and average
  original_rounding: bool = False


# A face box must be at least this many pixels on a side and at most this many times its
# image's larger side: anything else frames noise, not a face.
MIN_BOX_SIDE = 4.0
MAX_BOX_OVER_IMAGE = 8.0


def _forward_function(network):
  """network(images, training=False) as a tf.function of a fixed signature."""
  @tf.function(input_signature=[tf.TensorSpec([None, NET_SIZE, NET_SIZE, 1], tf.float32)])
  def forward(images):
    return network(images, training=False)

  return lambda images, training=False: forward(images)


class KeypointServer(tf.Module):
  """The exported module: one network, or a coarse-to-fine cascade, with its framing.

  Images are decoded once per request into one zero-padded canvas; every stage then
  frames the whole batch with one warp (the same `framing.frame_batch` as evaluation).
  """

  def __init__(self, stages, box_passes=None):
    """box_passes: how many refining stages a given face box runs (None: all of them).
    A box saves the first pass; fewer refinements trade accuracy for time per face."""
    super().__init__(name="keypoint_server")
    self.stages = list(stages)
    self.box_passes = box_passes
    # Tracked for saving; a network that refines twice is saved once.
    networks = list({id(stage.network): stage.network for stage in self.stages}.values())
    # One traced function per network, called from every signature and stage: the saved
    # graph then holds each network once, not once per signature, stage and flip. Only
    # the networks' weights are tracked (a network that refines twice is saved once), not
    # the Keras objects, whose own per-layer functions would double the export's size.
    self.network_weights = [list(network.weights) for network in networks]
    self._forwards = {id(network): _forward_function(network) for network in networks}

  @staticmethod
  def _decode_canvas(image_bytes):
    """[N] encoded images -> (canvas [N, H, W, 1] uint8, sizes [N, 2] (height, width))."""
    def decode_one(encoded):
      image = decode_gray(encoded, name="image_bytes")
      return tf.RaggedTensor.from_tensor(image), tf.shape(image)[:2]

    images, sizes = tf.map_fn(decode_one, image_bytes, fn_output_signature=(
        tf.RaggedTensorSpec([None, None, 1], tf.uint8, ragged_rank=1),
        tf.TensorSpec([2], tf.int32)))
    # Zero padding is harmless: the warp fills outside each image with zero too.
    return images.to_tensor(), sizes

  @staticmethod
  def _checked_boxes(boxes, sizes):
    """Refuses, naming `boxes` and the index, a box count that is not one per image and
    every box that is not finite, is smaller than MIN_BOX_SIDE, misses its image or is
    absurdly larger than it. An all-zero box (the whole image) passes."""
    count_check = tf.debugging.assert_equal(
        tf.shape(boxes)[0], tf.shape(sizes)[0],
        message="boxes: give exactly one box (x0, y0, x1, y1) per image; boxes, images:")
    with tf.control_dependencies([count_check]):
      boxes = tf.identity(boxes)
    height = tf.cast(sizes[:, 0], tf.float32)
    width = tf.cast(sizes[:, 1], tf.float32)
    x0, y0, x1, y1 = tf.unstack(boxes, axis=-1)
    largest = MAX_BOX_OVER_IMAGE * tf.maximum(height, width)
    valid = tf.reduce_all(tf.math.is_finite(boxes), axis=-1) & tf.reduce_all(
        [x1 - x0 >= MIN_BOX_SIDE, y1 - y0 >= MIN_BOX_SIDE, x0 < width, y0 < height,
         x1 > 0.0, y1 > 0.0, x1 - x0 <= largest, y1 - y0 <= largest], axis=0)
    valid = valid | tf.reduce_all(boxes == 0.0, axis=-1)
    check = tf.debugging.Assert(tf.reduce_all(valid), [
        "boxes: a box (x0, y0, x1, y1) is not finite, under 4 px on a side, outside its "
        "image or over 8x its size; at index:", tf.where(~valid)[:, 0], "boxes:", boxes,
        "image (height, width):", sizes], summarize=16)
    with tf.control_dependencies([check]):
      return tf.identity(boxes)

  def _run_stage(self, stage, canvas, regions):
    images_net, net_from_image = framing.frame_batch(
        canvas, regions, stage.rescale_size, original_rounding=stage.original_rounding)
    keypoints_net = framing.keypoints_net_of(self._forwards[id(stage.network)], images_net,
                                             stage.normalisation,
                                             stage.flip_average)
    return framing.keypoints_px_from_net(keypoints_net, net_from_image)

  def _keypoints(self, image_bytes, boxes):
    """The cascade. A whole image (all-zero box) runs every stage; a face box is taken as
    the face's keypoint box and starts at the first refining stage (with no refining
    stage, it frames the first stage as the whole image would)."""
    def run():
      canvas, sizes = self._decode_canvas(image_bytes)
      checked = self._checked_boxes(boxes, sizes)
      whole = framing.whole_image_regions(sizes)
      has_box = tf.reduce_any(checked != 0.0, axis=-1)
      refining = [i for i, stage in enumerate(self.stages) if stage.region_margin is not None]
      if not refining:
        regions = tf.where(has_box[:, tf.newaxis], checked, whole)
        keypoints_px = self._run_stage(self.stages[0], canvas, regions)
        for stage in self.stages[1:]:
          keypoints_px = self._run_stage(stage, canvas, regions)
        return keypoints_px
      first_refining = refining[0]

      def coarse():
        keypoints_px = self._run_stage(self.stages[0], canvas, whole)
        for stage in self.stages[1:first_refining]:
          keypoints_px = self._run_stage(stage, canvas, whole)
        return keypoints_px

      # The coarse stages run only when some image came without a box.
      coarse_px = tf.cond(tf.reduce_all(has_box),
                          lambda: tf.zeros([tf.shape(canvas)[0], NUM_KEYPOINTS, 2]), coarse)
      margin = self.stages[first_refining].region_margin
      regions = tf.where(has_box[:, tf.newaxis],
                         geometry.square_around_box(checked, margin),
                         geometry.square_around_points(coarse_px, margin))
      keypoints_px = self._run_stage(self.stages[first_refining], canvas, regions)
      for index, stage in enumerate(self.stages[first_refining + 1:], start=2):
        regions = geometry.square_around_points(keypoints_px, stage.region_margin)
        refine = lambda s=stage, r=regions: self._run_stage(s, canvas, r)
        if self.box_passes is not None and index > self.box_passes:
          # Boxed faces stop here; the pass runs only when some image came without a box.
          previous = keypoints_px
          keypoints_px = tf.cond(
              tf.reduce_all(has_box), lambda p=previous: p,
              lambda p=previous, f=refine: tf.where(has_box[:, tf.newaxis, tf.newaxis], p, f()))
        else:
          keypoints_px = refine()
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
    """Face boxes (x0, y0, x1, y1) in pixels, one per image; all zero: the whole image."""
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
