"""Pure batched matrix maths between image frames; no image ops, no randomness.

Every matrix here is a [N, 3, 3] float32 tensor acting on homogeneous column vectors
(x, y, 1) in *continuous* pixel coordinates: an image of width W spans [0, W], the centre
of pixel column i is i + 0.5. Training, evaluation, serving and predict all get their
"original image -> net frame" map from `frame_matrix` and undo it with `tf.linalg.inv`.
"""

import tensorflow as tf

from fkd_tf.core.keypoints import NET_SIZE


def _stack_rows(rows):
  """[[a, b, c], [d, e, f]] of [N] tensors -> [N, 3, 3] with last row (0, 0, 1)."""
  zeros = tf.zeros_like(rows[0][0])
  ones = tf.ones_like(rows[0][0])
  flat = rows[0] + rows[1] + [zeros, zeros, ones]
  return tf.reshape(tf.stack(flat, axis=-1), [-1, 3, 3])


def frame_matrix(regions, crop_fraction, rescale_size, crop_size=NET_SIZE,
                 original_rounding=False):
  """Maps image pixels to the net frame, as the original's Rescale + Crop did.

  The region's shorter side is scaled to `rescale_size` (aspect kept), then a
  crop_size x crop_size window is cut from it; `crop_fraction` places the window along
  the slack on each axis (0: left/top, 0.5: centred, 1: right/bottom).

  With original_rounding, the sizes and offsets are the whole pixels the original's
  numpy code used: Rescale's int() of each rescaled side (so x and y scales differ
  slightly: 89x103 -> 100x115, not 100x115.73) and a crop at floor(fraction x slack) whole
  pixels. A fraction uniform in [0, 1) then gives RandomCrop's np.random.randint(0, slack)
  (0 .. slack - 1), and 0.5 its centre crop, slack // 2.

  Args:
    regions: [N, 4] float (x0, y0, x1, y1) in image pixels: the whole image or a face box.
    crop_fraction: [N, 2] float in [0, 1], (along x, along y).
    rescale_size: scalar, the shorter side after rescaling (100 in the original).
    crop_size: the side of the net frame.
    original_rounding: Python bool, round as the original did (above).
  Returns:
    [N, 3, 3] matrix, net frame <- image pixels.
  """
  regions = tf.convert_to_tensor(regions, tf.float32)
  crop_fraction = tf.convert_to_tensor(crop_fraction, tf.float32)
  x0, y0, x1, y1 = tf.unstack(regions, axis=-1)
  width, height = x1 - x0, y1 - y0
  if original_rounding:
    scale_x, scale_y, offset_x, offset_y = _original_scales_and_offsets(
        width, height, crop_fraction, rescale_size, crop_size)
  else:
    scale_x = scale_y = tf.cast(rescale_size, tf.float32) / tf.minimum(width, height)
    offset_x = (scale_x * width - crop_size) * crop_fraction[:, 0]
    offset_y = (scale_y * height - crop_size) * crop_fraction[:, 1]
  zeros = tf.zeros_like(scale_x)
  return _stack_rows([[scale_x, zeros, -scale_x * x0 - offset_x],
                      [zeros, scale_y, -scale_y * y0 - offset_y]])


def _original_scales_and_offsets(width, height, crop_fraction, rescale_size, crop_size):
  """The original's whole-pixel Rescale and crop (see `frame_matrix`), as float32 tensors.

  In float64, because Python's int(100 * h / w) is float64 arithmetic: float32 would turn
  a side of exactly 115 into 114.99999 and truncate it to 114.
  """
  width, height = tf.cast(width, tf.float64), tf.cast(height, tf.float64)
  size = tf.cast(rescale_size, tf.float64)
  # Rescale: `if h > w: new_h, new_w = size * h / w, size; else: size, size * w / h`.
  portrait = height > width
  new_width = tf.floor(tf.where(portrait, size, size * width / height))
  new_height = tf.floor(tf.where(portrait, size * height / width, size))
  fraction = tf.cast(crop_fraction, tf.float64)
  offset_x = tf.floor((new_width - crop_size) * fraction[:, 0])
  offset_y = tf.floor((new_height - crop_size) * fraction[:, 1])
  to_float32 = lambda value: tf.cast(value, tf.float32)
  return (to_float32(new_width / width), to_float32(new_height / height),
          to_float32(offset_x), to_float32(offset_y))


def similarity_about_centre(scale, angle, shift_x, shift_y, flip, centre=NET_SIZE / 2.0):
  """A similarity (optionally mirrored) about the net frame's centre.

  p' = centre + shift + scale * R(angle) * F * (p - centre), F = diag(-1, 1) where flip.

  Args:
    scale, angle (radians), shift_x, shift_y (net pixels): [N] float.
    flip: [N] bool.
  Returns:
    [N, 3, 3] matrix, net frame <- net frame.
  """
  mirror = tf.where(flip, -1.0, 1.0)
  cos, sin = scale * tf.cos(angle), scale * tf.sin(angle)
  a, b = cos * mirror, -sin
  c, d = sin * mirror, cos
  tx = centre + shift_x - a * centre - b * centre
  ty = centre + shift_y - c * centre - d * centre
  return _stack_rows([[a, b, tx], [c, d, ty]])


def transform_points(matrix, points):
  """Applies [N, 3, 3] matrices to [N, K, 2] points; returns [N, K, 2]."""
  linear = matrix[:, :2, :2]
  translation = matrix[:, :2, 2]
  return tf.einsum("nij,nkj->nki", linear, points) + translation[:, tf.newaxis, :]


def projective_transform_params(net_from_image):
  """Turns a net<-image matrix into the 8 parameters of ImageProjectiveTransformV3.

  The op maps each *output* pixel index to the *input* pixel index it samples, and puts
  the value of pixel (i, j) at index (i, j), i.e. at continuous point (i + 0.5, j + 0.5).
  So it needs image_index <- net_index = T(-0.5) . inverse(net<-image) . T(+0.5).

  Returns:
    [N, 8] float32.
  """
  image_from_net = tf.linalg.inv(net_from_image)
  half = tf.constant([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]])
  minus_half = tf.constant([[1.0, 0.0, -0.5], [0.0, 1.0, -0.5], [0.0, 0.0, 1.0]])
  index_map = tf.matmul(tf.matmul(minus_half[tf.newaxis], image_from_net), half[tf.newaxis])
  index_map = index_map / index_map[:, 2:3, 2:3]
  return tf.reshape(index_map, [-1, 9])[:, :8]


def square_around_points(points, margin):
  """A square region around each point set: side = margin x the larger side of its box.

  Args:
    points: [N, K, 2]; margin: scalar.
  Returns:
    [N, 4] (x0, y0, x1, y1).
  """
  low = tf.reduce_min(points, axis=1)
  high = tf.reduce_max(points, axis=1)
  centre = (low + high) / 2.0
  half = margin * tf.reduce_max(high - low, axis=-1, keepdims=True) / 2.0
  return tf.concat([centre - half, centre + half], axis=-1)


def square_around_box(boxes, margin):
  """A square region around each box: side = margin x the box's larger side, same centre.

  A face box is taken as the face's keypoint box, so a refining stage frames it exactly
  as it frames the previous stage's keypoints (`square_around_points`).

  Args:
    boxes: [N, 4] (x0, y0, x1, y1); margin: scalar.
  Returns:
    [N, 4] (x0, y0, x1, y1).
  """
  boxes = tf.convert_to_tensor(boxes, tf.float32)
  return square_around_points(tf.reshape(boxes, [-1, 2, 2]), margin)
