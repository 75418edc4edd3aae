"""The one-face path: decoded pixels and a face box in, keypoints out, on LiteRT.

A served face costs little arithmetic (a MobileNetV2 at alpha 0.5 is 27 MFLOP), so per
call overhead decides its speed. This path does in numpy, for one face, exactly what the
SavedModel's graph does for a batch (`data.decode.decode_gray`, `core.framing`), and runs
the networks on the LiteRT interpreter (XNNPACK) that the export wrote beside the
SavedModel. Tests hold its keypoints to the SavedModel's within 0.05 px.

The serving frame has no rotation, so the warp is separable: each output row samples two
image rows and each output column two image columns. Gray is computed on those rows and
columns only, with TensorFlow's own formula and rounding, never on the whole image.
"""

import json
import os

import numpy as np

from fkd_tf.core.framing import Framing
from fkd_tf.utils import io_utils
from fkd_tf.core.keypoints import MIRROR_PERMUTATION, NET_SIZE, NORMALISATIONS, NUM_KEYPOINTS

METADATA_FILE = "fkd_tf.json"
# tf.image.rgb_to_grayscale's weights and arithmetic (float32: v / 255 times the weight,
# summed; its uint8 output is trunc(sum * 255.5)), one lookup table per channel: three
# lookups per pixel cost far less than converting and multiplying.
_GRAY_WEIGHTS = np.array([0.2989, 0.5870, 0.1140], np.float32)
_GRAY_TABLES = (np.arange(256, dtype=np.float32) * np.float32(1.0 / 255.0))[:, np.newaxis] * (
    _GRAY_WEIGHTS[np.newaxis, :])
_NET_CENTRES = np.arange(NET_SIZE, dtype=np.float64) + 0.5


def _interpreter_class():
  """LiteRT's interpreter; TensorFlow's deprecated tf.lite one where LiteRT is missing."""
  try:
    from ai_edge_litert.interpreter import Interpreter  # pylint: disable=g-import-not-at-top
  except ImportError:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    Interpreter = tf.lite.Interpreter  # pylint: disable=invalid-name
  return Interpreter


def has_litert(saved_model_dir):
  """Whether an export carries LiteRT files for every stage."""
  path = os.path.join(saved_model_dir, "assets.extra", METADATA_FILE)
  if not io_utils.isfile(path):
    return False
  stages = json.loads(io_utils.read_bytes(path)).get("stages", [])
  return bool(stages) and all(stage.get("litert") for stage in stages)


def frame_of(region, rescale_size, original_rounding=False):
  """(scale_x, scale_y, tx, ty): the serving frame net = scale * image + t, as
  geometry.frame_matrix with a centred crop (and the original's whole-pixel rounding)."""
  x0, y0, x1, y1 = (float(v) for v in region)
  width, height = x1 - x0, y1 - y0
  if original_rounding:
    size = float(rescale_size)
    new_width = np.floor(size if height > width else size * width / height)
    new_height = np.floor(size * height / width if height > width else size)
    scale_x = float(np.float32(new_width / width))
    scale_y = float(np.float32(new_height / height))
    offset_x, offset_y = np.floor((new_width - NET_SIZE) * 0.5), np.floor(
        (new_height - NET_SIZE) * 0.5)
  else:
    scale_x = scale_y = float(rescale_size) / min(width, height)
    offset_x = (scale_x * width - NET_SIZE) * 0.5
    offset_y = (scale_y * height - NET_SIZE) * 0.5
  return scale_x, scale_y, -scale_x * x0 - offset_x, -scale_y * y0 - offset_y


def _taps(centres_net, scale, shift, length):
  """Image indices and weights of the two taps each net row or column samples."""
  # As ImageProjectiveTransformV3: output index i samples the input at continuous point
  # ((i + 0.5) - t) / scale, i.e. at index that - 0.5.
  position = (centres_net - shift) / scale - 0.5
  low = np.floor(position).astype(np.int64)
  weight = (position - low).astype(np.float32)
  index = np.concatenate([low, low + 1])
  inside = (index >= 0) & (index < length)
  return np.clip(index, 0, length - 1), inside, weight


def _gray(patch, channels):
  """Gray levels in [0, 1] of gathered pixels [..., C], as decode_gray and rgb_to_grayscale
  compute them (float32 weighted sum, truncated to uint8 levels)."""
  if channels == 1:
    # decode_image(channels=3) repeats gray into R, G and B before the weighted sum.
    weighted = _GRAY_TABLES[patch[..., 0]].sum(axis=-1, dtype=np.float32)
  else:
    weighted = (_GRAY_TABLES[patch[..., 0], 0] + _GRAY_TABLES[patch[..., 1], 1]
                + _GRAY_TABLES[patch[..., 2], 2])
  return np.trunc(weighted * np.float32(255.5)) * np.float32(1.0 / 255.0)


def prefilter_factor(scale, length):
  """The k x k mean that pre-filters an image shrunk by more than 2x into the net frame.

  Two bilinear taps per output pixel alias a face shrunk further (a 4x photo of a face
  turns its skin texture into noise): the image is first averaged over k x k blocks,
  k = floor(1 / scale), so that the rest of the way shrinks by at most 2x. An average
  over whole blocks maps continuous pixel x to x / k exactly (tf.nn.avg_pool2d, VALID).
  """
  if scale >= 0.5:
    return 1
  return int(max(1, min(np.floor(1.0 / scale), length)))


def gray_frame(image, region, rescale_size, original_rounding=False):
  """The 90x90 net frame of one decoded image: [90, 90] float32 in [0, 1] and its frame.

  image: [H, W] gray or [H, W, 3|4] RGB(A) uint8 (alpha dropped, as decode_gray does).
  A frame that shrinks the image by more than 2x samples a k x k block mean of it
  (`prefilter_factor`), unless it frames as the original did (original_rounding).
  """
  height, width = image.shape[:2]
  frame = frame_of(region, rescale_size, original_rounding)
  scale_x, scale_y, tx, ty = frame
  if original_rounding:  # the original's framing resampled without a pre-filter
    k_x = k_y = 1
  else:
    k_x, k_y = prefilter_factor(scale_x, width), prefilter_factor(scale_y, height)
  channels = 1 if image.ndim == 2 else image.shape[2]
  rows, rows_inside, wy = _taps(_NET_CENTRES, scale_y * k_y, ty, height // k_y)
  cols, cols_inside, wx = _taps(_NET_CENTRES, scale_x * k_x, tx, width // k_x)
  if k_x == 1 and k_y == 1:
    # One gather of the 180 x 180 taps from the flattened image.
    taps = (rows[:, np.newaxis] * width + cols[np.newaxis, :]).reshape(-1)
    patch = np.take(image.reshape(-1, channels), taps, axis=0)
    gray = _gray(patch, channels).reshape(len(rows), len(cols))
  else:
    # Gray of the blocks the taps read (only those), then each block's mean.
    r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    block = image[r0 * k_y:r1 * k_y, c0 * k_x:c1 * k_x].reshape(
        (r1 - r0) * k_y, (c1 - c0) * k_x, channels)
    pooled = _gray(block, channels).reshape(r1 - r0, k_y, c1 - c0, k_x).mean(
        axis=(1, 3), dtype=np.float32)
    gray = pooled[(rows - r0)[:, np.newaxis], (cols - c0)[np.newaxis, :]]
  gray = gray * (rows_inside[:, np.newaxis] & cols_inside[np.newaxis, :])  # zero fill outside
  n = NET_SIZE
  vertical = gray[:n] * (1.0 - wy)[:, np.newaxis] + gray[n:] * wy[:, np.newaxis]
  pixels = vertical[:, :n] * (1.0 - wx) + vertical[:, n:] * wx
  return pixels.astype(np.float32), frame


def square_around_points(points, margin):
  """numpy twin of geometry.square_around_points for one point set [K, 2]."""
  low, high = points.min(axis=0), points.max(axis=0)
  centre = (low + high) / 2.0
  half = margin * float((high - low).max()) / 2.0
  return np.concatenate([centre - half, centre + half])


class LiteRTCascade:
  """An export's stages run on LiteRT, one face at a time."""

  def __init__(self, saved_model_dir, num_threads=1):
    metadata = json.loads(io_utils.read_bytes(
        os.path.join(saved_model_dir, "assets.extra", METADATA_FILE)))
    # Each stage's record, with its framing read back as the export wrote it.
    self.stages = [dict(stage, framing=Framing.from_json(stage)) for stage in metadata["stages"]]
    self.box_passes = metadata.get("box_passes")
    interpreter_class = _interpreter_class()
    self._runners = {}
    for stage in self.stages:
      name = stage["litert"]
      if name not in self._runners:
        # From bytes, so an export on gs:// or ram:// loads as a local one does.
        interpreter = interpreter_class(
            model_content=io_utils.read_bytes(
                os.path.join(saved_model_dir, "assets.extra", name)),
            num_threads=num_threads)
        interpreter.allocate_tensors()
        self._runners[name] = (interpreter, interpreter.get_input_details()[0]["index"],
                               interpreter.get_output_details()[0]["index"])
    self._first_refining = next((i for i, s in enumerate(self.stages)
                                 if s["framing"].region_margin is not None), None)

  def _network(self, stage, frame):
    interpreter, input_index, output_index = self._runners[stage["litert"]]
    interpreter.set_tensor(input_index, frame[np.newaxis, :, :, np.newaxis])
    interpreter.invoke()
    offset, scale = NORMALISATIONS[stage["framing"].normalisation]
    return interpreter.get_tensor(output_index).reshape(NUM_KEYPOINTS, 2) * scale + offset

  def _run_stage(self, stage, image, region):
    frame, (scale_x, scale_y, tx, ty) = gray_frame(
        image, region, stage["framing"].rescale_size, stage["framing"].original_rounding)
    keypoints_net = self._network(stage, frame)
    if stage["flip_average"]:
      mirrored = self._network(stage, np.ascontiguousarray(frame[:, ::-1]))
      unmirrored = mirrored[MIRROR_PERMUTATION] * [-1.0, 1.0] + [NET_SIZE, 0.0]
      keypoints_net = (keypoints_net + unmirrored) / 2.0
    return (keypoints_net - [tx, ty]) / [scale_x, scale_y]

  def keypoints(self, image, box=None):
    """[68, 2] keypoints of one decoded image in its pixels; box (x0, y0, x1, y1) or None.

    As the SavedModel: a box is the face's keypoint box and starts at the first refining
    stage; without one (or with no refining stage) the whole image is framed first.
    """
    height, width = image.shape[:2]
    whole = np.array([0.0, 0.0, width, height])
    has_box = box is not None and np.any(np.asarray(box) != 0)
    if self._first_refining is None:
      region = np.asarray(box, np.float64) if has_box else whole
      keypoints_px = None
      for stage in self.stages:
        keypoints_px = self._run_stage(stage, image, region)
      return keypoints_px.astype(np.float32)
    first = self._first_refining
    if has_box:
      box = np.asarray(box, np.float64)
      region = square_around_points(box.reshape(2, 2),
                                    self.stages[first]["framing"].region_margin)
    else:
      keypoints_px = None
      for stage in self.stages[:first]:
        keypoints_px = self._run_stage(stage, image, whole)
      region = square_around_points(keypoints_px, self.stages[first]["framing"].region_margin)
    keypoints_px = self._run_stage(self.stages[first], image, region)
    refining = self.stages[first + 1:]
    if has_box and self.box_passes is not None:
      refining = refining[:max(0, self.box_passes - 1)]
    for stage in refining:
      region = square_around_points(keypoints_px, stage["framing"].region_margin)
      keypoints_px = self._run_stage(stage, image, region)
    return keypoints_px.astype(np.float32)
