"""The served module: encoded image bytes in, keypoints in image pixels out.

The serving graph decodes and preprocesses with the very functions evaluation uses
(`data.decode.decode_gray`, `core.framing`), one image at a time so a batch may mix
sizes and formats. `serving.saved_model` writes it for TF Serving.
"""

import dataclasses

import tensorflow as tf

from fkd_tf.core import blazeface, framing, geometry
from fkd_tf.core.framing import Framing
from fkd_tf.core.keypoints import NET_SIZE, NUM_KEYPOINTS
from fkd_tf.data.decode import decode_gray, decode_rgb, header_pixels


@dataclasses.dataclass
class Stage:
  """One network of the served model and the framing it was trained with.

  framing: its `core.framing.Framing`; a region_margin of None marks a whole-image stage
  (framed on the whole image, or on a given box when the model has no refining stage), a
  number a refining stage (a square that many times the larger side of a keypoint box:
  the previous stage's keypoints, or a face box).
  """
  network: object
  framing: Framing
  flip_average: bool = False  # also run on the mirrored frame and average


# A face box must be at least this many pixels on a side and at most this many times its
# image's larger side: anything else frames noise, not a face.
MIN_BOX_SIDE = 4.0
MAX_BOX_OVER_IMAGE = 8.0
# A request's images together may announce at most this many pixels (their headers are
# read before anything is decoded). Each image alone is capped by decode.MAX_PIXELS.
MAX_REQUEST_PIXELS = 100_000_000
# Pixels beyond a frame's bounding box that its bilinear samples may read.
_FRAME_MARGIN_PX = 2.0


def _check_request_pixels(image_bytes, max_pixels=MAX_REQUEST_PIXELS):
  """image_bytes, to be decoded only after a check that refuses (InvalidArgument naming
  the limit) a request whose images together announce more than max_pixels."""
  pixels = tf.map_fn(header_pixels, image_bytes, fn_output_signature=tf.int64)
  total = tf.reduce_sum(tf.maximum(pixels, 0))
  check = tf.debugging.Assert(total <= max_pixels, [
      f"image_bytes: the request's images hold more than MAX_REQUEST_PIXELS = {max_pixels} "
      "pixels together; send fewer or smaller images per request; pixels:", total])
  with tf.control_dependencies([check]):
    return tf.identity(image_bytes)


def _prefilter_factors(net_from_image, sizes):
  """[M, 2] int32 (k_x, k_y): the block mean that pre-filters a frame shrinking its image
  by more than 2x, as `litert.prefilter_factor` computes it for the one-face path."""
  scale = tf.stack([net_from_image[:, 0, 0], net_from_image[:, 1, 1]], axis=-1)
  length = tf.cast(sizes[:, ::-1], tf.float32)  # (width, height)
  factor = tf.minimum(tf.floor(1.0 / scale), length)
  return tf.cast(tf.where(scale >= 0.5, 1.0, tf.maximum(factor, 1.0)), tf.int32)


def _frame_faces(images, image_index, net_from_image, sizes, prefilter=True):
  """Each face's net frame, warped from its own image: [M, 90, 90, 1] float32 in [0, 1].

  The same bilinear warp as `framing.warp_images` on a padded canvas, but each face reads
  only the part of its image under its frame (plus a margin for the bilinear
  neighbours), cast to float there: no canvas of N x the tallest x the widest image, and
  no float copy of whole photos for one small face. A frame that shrinks its image by
  more than 2x first averages it over k x k blocks (k = floor(1 / scale), the blocks
  aligned to the image's origin as the LiteRT path aligns them): two bilinear taps alone
  would alias a large face into noise.

  Args:
    images: [N, (H), (W), 1] uint8 ragged; image_index: [M] int; net_from_image: [M, 3, 3];
    sizes: [N, 2] int (height, width).
    prefilter: False for a stage framed as the original did (original_rounding): the
      original resampled without one, and the faithful recipe is served as it trained.
  """
  image_index = tf.cast(image_index, tf.int32)
  corners = tf.constant([[0.0, 0.0], [NET_SIZE, 0.0], [0.0, NET_SIZE], [NET_SIZE, NET_SIZE]])
  corners = tf.tile(corners[tf.newaxis], [tf.shape(net_from_image)[0], 1, 1])
  corners_px = geometry.transform_points(tf.linalg.inv(net_from_image), corners)
  low = tf.floor(tf.reduce_min(corners_px, axis=1) - _FRAME_MARGIN_PX)  # [M, 2] (x, y)
  high = tf.math.ceil(tf.reduce_max(corners_px, axis=1) + _FRAME_MARGIN_PX)
  factors = _prefilter_factors(net_from_image, tf.gather(sizes, image_index))
  if not prefilter:
    factors = tf.ones_like(factors)

  def frame_one(args):
    index, matrix, low, high, factor = args
    image = images[index].to_tensor()
    blocks = tf.shape(image)[1::-1] // factor  # whole k x k blocks (width, height)
    k = tf.cast(factor, tf.float32)
    # In blocks: at least one, so a frame beside the image still warps (to zeros).
    start = tf.clip_by_value(tf.cast(tf.floor(low / k), tf.int32) - 1, 0, blocks - 1)
    stop = tf.clip_by_value(tf.cast(tf.math.ceil(high / k), tf.int32) + 1, start + 1, blocks)
    x0, y0 = tf.unstack(start * factor)
    x1, y1 = tf.unstack(stop * factor)
    crop = tf.cast(image[y0:y1, x0:x1], tf.float32) * (1.0 / 255.0)
    count = stop - start
    crop = tf.reduce_mean(tf.reshape(crop, [count[1], factor[1], count[0], factor[0], 1]),
                          axis=[1, 3])
    # Block (i, j) of the crop covers image pixels from (x0 + k_x j, y0 + k_y i) on.
    image_from_crop = tf.stack([[k[0], 0.0, tf.cast(x0, tf.float32)],
                                [0.0, k[1], tf.cast(y0, tf.float32)], [0.0, 0.0, 1.0]])
    return framing.warp_images(crop[tf.newaxis],
                               tf.matmul(matrix, image_from_crop)[tf.newaxis])[0]

  return tf.map_fn(frame_one, (image_index, net_from_image, low, high, factors),
                   fn_output_signature=tf.TensorSpec([NET_SIZE, NET_SIZE, 1], tf.float32))


def _forward_function(network):
  """network(images, training=False) as a tf.function of a fixed signature."""
  @tf.function(input_signature=[tf.TensorSpec([None, NET_SIZE, NET_SIZE, 1], tf.float32)])
  def forward(images):
    return network(images, training=False)

  return lambda images, training=False: forward(images)


class KeypointServer(tf.Module):
  """The exported module: one network, or a coarse-to-fine cascade, with its framing.

  Images are decoded once per request, each kept at its own size; every stage frames
  each face from its image with the warp evaluation uses (`_frame_faces`).
  """

  def __init__(self, stages, box_passes=None, detector=None):
    """box_passes: how many refining stages a given face box runs (None: all of them).
    A box saves the first pass; fewer refinements trade accuracy for time per face.
    detector: a `serving.face_detector.FaceDetector` for the `detect` signature (or None).
    """
    super().__init__(name="keypoint_server")
    self.stages = list(stages)
    self.box_passes = box_passes
    self.detector = detector
    if detector is not None:
      # Every tf.function of the module is saved, so `serve_detect` exists only with a
      # detector. Whole photos in; out num_detections [N] int32, detection_boxes
      # [N, K, 4] (x0, y0, x1, y1 pixels), detection_scores [N, K] and detection_keypoints
      # [N, K, 68, 2] (pixels), best first, zero beyond num_detections.
      self.serve_detect = tf.function(
          self._detect,
          input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    # Tracked for saving; a network that refines twice is saved once.
    networks = list({id(stage.network): stage.network for stage in self.stages}.values())
    # One traced function per network, called from every signature and stage: the saved
    # graph then holds each network once, not once per signature, stage and flip. Only
    # the networks' weights are tracked (a network that refines twice is saved once), not
    # the Keras objects, whose own per-layer functions would double the export's size.
    self.network_weights = [list(network.weights) for network in networks]
    self._forwards = {id(network): _forward_function(network) for network in networks}

  @staticmethod
  def _decode_images(image_bytes):
    """[N] encoded images -> (images [N, (H), (W), 1] ragged uint8, sizes [N, 2]).

    No padded canvas: each face is framed from its own image (`_frame_faces`), so memory
    is what the images hold, not N x the tallest x the widest of a request.
    """
    image_bytes = _check_request_pixels(image_bytes)

    def decode_one(encoded):
      image = decode_gray(encoded, name="image_bytes")
      return tf.RaggedTensor.from_tensor(image), tf.shape(image)[:2]

    return tf.map_fn(decode_one, image_bytes, fn_output_signature=(
        tf.RaggedTensorSpec([None, None, 1], tf.uint8, ragged_rank=1),
        tf.TensorSpec([2], tf.int32)))

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

  def _run_stage(self, stage, images, sizes, image_index, regions):
    crop_fraction = tf.fill([tf.shape(regions)[0], 2], 0.5)  # `framing.frame_batch`'s
    net_from_image = geometry.frame_matrix(regions, crop_fraction, stage.framing.rescale_size,
                                           original_rounding=stage.framing.original_rounding)
    images_net = _frame_faces(images, image_index, net_from_image, sizes,
                              prefilter=not stage.framing.original_rounding)
    keypoints_net = framing.keypoints_net_of(self._forwards[id(stage.network)], images_net,
                                             stage.framing.normalisation,
                                             stage.flip_average)
    return framing.keypoints_px_from_net(keypoints_net, net_from_image)

  def _cascade(self, images, sizes, image_index, boxes):
    """The cascade for M faces. A whole image (all-zero box) runs every stage; a face box
    is taken as the face's keypoint box and starts at the first refining stage (with no
    refining stage, it frames the first stage as the whole image would).

    Args:
      images: [N, (H), (W), 1] uint8; sizes: [N, 2] (height, width).
      image_index: [M] int, each face's image; boxes: [M, 4] checked boxes (or zeros).
    Returns:
      keypoints_px [M, 68, 2].
    """
    whole = framing.whole_image_regions(tf.gather(sizes, image_index))
    has_box = tf.reduce_any(boxes != 0.0, axis=-1)
    run_stage = lambda stage, regions: self._run_stage(stage, images, sizes, image_index,
                                                       regions)
    refining = [i for i, stage in enumerate(self.stages)
                if stage.framing.region_margin is not None]
    if not refining:
      regions = tf.where(has_box[:, tf.newaxis], boxes, whole)
      keypoints_px = run_stage(self.stages[0], regions)
      for stage in self.stages[1:]:
        keypoints_px = run_stage(stage, regions)
      return keypoints_px
    first_refining = refining[0]

    def coarse():
      keypoints_px = run_stage(self.stages[0], whole)
      for stage in self.stages[1:first_refining]:
        keypoints_px = run_stage(stage, whole)
      return keypoints_px

    # The coarse stages run only when some image came without a box.
    coarse_px = tf.cond(tf.reduce_all(has_box),
                        lambda: tf.zeros([tf.shape(boxes)[0], NUM_KEYPOINTS, 2]), coarse)
    margin = self.stages[first_refining].framing.region_margin
    regions = tf.where(has_box[:, tf.newaxis],
                       geometry.square_around_box(boxes, margin),
                       geometry.square_around_points(coarse_px, margin))
    keypoints_px = run_stage(self.stages[first_refining], regions)
    for index, stage in enumerate(self.stages[first_refining + 1:], start=2):
      regions = geometry.square_around_points(keypoints_px, stage.framing.region_margin)
      refine = lambda s=stage, r=regions: run_stage(s, r)
      if self.box_passes is not None and index > self.box_passes:
        # Boxed faces stop here; the pass runs only when some image came without a box.
        previous = keypoints_px
        keypoints_px = tf.cond(
            tf.reduce_all(has_box), lambda p=previous: p,
            lambda p=previous, f=refine: tf.where(has_box[:, tf.newaxis, tf.newaxis], p, f()))
      else:
        keypoints_px = refine()
    return keypoints_px

  def _keypoints(self, image_bytes, boxes):
    """One face per image: its box, or the whole image where the box is all zero."""
    def run():
      images, sizes = self._decode_images(image_bytes)
      checked = self._checked_boxes(boxes, sizes)
      return self._cascade(images, sizes, tf.range(tf.shape(sizes)[0]), checked)

    # An empty request gets an empty answer (convolutions reject a batch of zero on CPU).
    keypoints_px = tf.cond(tf.size(image_bytes) > 0, run,
                           lambda: tf.zeros([0, NUM_KEYPOINTS, 2], tf.float32))
    return {"keypoints": keypoints_px}

  def _detect(self, image_bytes):
    """Every face of every image: detection, then the cascade from each face's box as
    `with_boxes` runs it on `detect.keypoint_boxes_of_regions(detect.crop_regions(...))`.
    """
    image_bytes = _check_request_pixels(image_bytes)
    max_faces = self.detector.max_faces

    def detect_one(encoded):
      rgb = decode_rgb(encoded, name="image_bytes")
      boxes_px, scores, count = self.detector.detect(rgb)
      gray = tf.image.rgb_to_grayscale(rgb)
      return tf.RaggedTensor.from_tensor(gray), tf.shape(gray)[:2], boxes_px, scores, count

    images, sizes, boxes_px, scores, counts = tf.map_fn(
        detect_one, image_bytes, fn_output_signature=(
            tf.RaggedTensorSpec([None, None, 1], tf.uint8, ragged_rank=1),
            tf.TensorSpec([2], tf.int32), tf.TensorSpec([max_faces, 4], tf.float32),
            tf.TensorSpec([max_faces], tf.float32), tf.TensorSpec([], tf.int32)))
    found = tf.range(max_faces)[tf.newaxis] < counts[:, tf.newaxis]  # [N, K]
    where = tf.where(found)  # [M, 2] (image, face)
    face_boxes = blazeface.keypoint_boxes(tf.gather_nd(boxes_px, where))
    keypoints_px = tf.cond(
        tf.shape(where)[0] > 0,
        lambda: self._cascade(images, sizes, where[:, 0], face_boxes),
        lambda: tf.zeros([0, NUM_KEYPOINTS, 2], tf.float32))
    keypoints_px = tf.scatter_nd(where, keypoints_px,
                                 [tf.shape(counts)[0], max_faces, NUM_KEYPOINTS, 2])
    return {"num_detections": counts, "detection_boxes": boxes_px,
            "detection_scores": scores, "detection_keypoints": keypoints_px}

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
  return Stage(network, Framing.of_config(config))
