"""Decoding encoded images by content, with the checks every path needs before decoding.

Training's input pipeline and the serving graph both decode with `decode_gray`, so a
face is turned into gray pixels the same way wherever it comes from.
"""

import tensorflow as tf

# The leading bytes of the formats tf.io.decode_image reads.
_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM")
# Larger images are refused before decoding: an 8000x8000 RGB photo alone would take
# 190 MB decoded, and a batch of them a server's memory.
MAX_PIXELS = 50_000_000


def is_image(image_bytes):
  """Scalar bool: the bytes start like a PNG, JPEG, GIF or BMP file."""
  head = tf.strings.substr(image_bytes, 0, 4)
  matches = [tf.strings.substr(head, 0, len(m)) == m for m in _MAGIC]
  return tf.reduce_any(tf.stack(matches))


def header_pixels(image_bytes):
  """Width x height read from a PNG or JPEG header without decoding (-1 otherwise)."""
  def png():
    size = tf.io.decode_raw(tf.strings.substr(image_bytes, 16, 8), tf.uint8)
    size = tf.cast(size, tf.int64)
    width = ((size[0] * 256 + size[1]) * 256 + size[2]) * 256 + size[3]
    height = ((size[4] * 256 + size[5]) * 256 + size[6]) * 256 + size[7]
    return width * height

  def jpeg():
    shape = tf.cast(tf.image.extract_jpeg_shape(image_bytes), tf.int64)
    return shape[0] * shape[1]

  head = tf.strings.substr(image_bytes, 0, 4)
  is_png = tf.logical_and(head == b"\x89PNG", tf.strings.length(image_bytes) >= 24)
  is_jpeg = tf.strings.substr(head, 0, 3) == b"\xff\xd8\xff"
  return tf.case([(is_png, png), (is_jpeg, jpeg)],
                 default=lambda: tf.constant(-1, tf.int64))


def decode_gray(image_bytes, name="image", max_pixels=MAX_PIXELS):
  """Decodes one encoded image (PNG, JPEG, ...; 1 to 4 channels) to gray uint8 [H, W, 1].

  Decoding is by content, never by file name: the data set's `.jpg` files are PNGs.
  Raises InvalidArgumentError naming `name` when the bytes are not an image, or when a
  PNG or JPEG header announces more than max_pixels.
  """
  check = tf.debugging.Assert(is_image(image_bytes),
                              [f"{name} is not a PNG, JPEG, GIF or BMP image"])
  with tf.control_dependencies([check]):
    pixels = header_pixels(image_bytes)
  size_check = tf.debugging.Assert(
      pixels <= max_pixels,
      [f"{name} is too large: over {max_pixels} pixels; pixels:", pixels])
  # In a graph the checks must run before the decoder, whose own error names nothing.
  with tf.control_dependencies([check, size_check]):
    image_bytes = tf.identity(image_bytes)
  # channels=3 drops alpha and replicates gray, so one conversion serves every input.
  image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False,
                             dtype=tf.uint8)
  return tf.image.rgb_to_grayscale(image)
