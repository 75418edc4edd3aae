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


def _little_endian(image_bytes, offset, length, signed=False):
  """The int64 value of the little-endian header field at bytes [offset, offset + length)."""
  field_bytes = tf.cast(tf.io.decode_raw(tf.strings.substr(image_bytes, offset, length),
                                         tf.uint8), tf.int64)
  value = tf.constant(0, tf.int64)
  for i in reversed(range(length)):
    value = value * 256 + field_bytes[i]
  if signed:
    value = tf.where(value >= 2 ** (8 * length - 1), value - 2 ** (8 * length), value)
  return value


def header_pixels(image_bytes):
  """Width x height read from a PNG, JPEG, GIF or BMP header without decoding (-1 when
  the bytes are none of these, or too short to hold the header).

  A decoder allocates what the header announces, whatever the file's size: a 107 KB GIF
  can announce 12000 x 12000 pixels (4.6 GB of RGB), so every format is read.
  """
  def png():  # IHDR: big-endian width and height at bytes 16-23
    size = tf.io.decode_raw(tf.strings.substr(image_bytes, 16, 8), tf.uint8)
    size = tf.cast(size, tf.int64)
    width = ((size[0] * 256 + size[1]) * 256 + size[2]) * 256 + size[3]
    height = ((size[4] * 256 + size[5]) * 256 + size[6]) * 256 + size[7]
    return width * height

  def jpeg():
    shape = tf.cast(tf.image.extract_jpeg_shape(image_bytes), tf.int64)
    return shape[0] * shape[1]

  def gif():  # the logical screen, which the decoder allocates per frame: bytes 6-9
    return _little_endian(image_bytes, 6, 2) * _little_endian(image_bytes, 8, 2)

  def bmp():  # BITMAPINFOHEADER: signed width and height at bytes 18-25; a negative
    # height means rows stored top-down, the same number of pixels.
    return (tf.abs(_little_endian(image_bytes, 18, 4, signed=True)) *
            tf.abs(_little_endian(image_bytes, 22, 4, signed=True)))

  head = tf.strings.substr(image_bytes, 0, 4)
  length = tf.strings.length(image_bytes)
  is_png = tf.logical_and(head == b"\x89PNG", length >= 24)
  is_jpeg = tf.strings.substr(head, 0, 3) == b"\xff\xd8\xff"
  is_gif = tf.logical_and(tf.strings.substr(head, 0, 4) == b"GIF8", length >= 10)
  is_bmp = tf.logical_and(tf.strings.substr(head, 0, 2) == b"BM", length >= 26)
  return tf.case([(is_png, png), (is_jpeg, jpeg), (is_gif, gif), (is_bmp, bmp)],
                 default=lambda: tf.constant(-1, tf.int64))


def decode_gray(image_bytes, name="image", max_pixels=MAX_PIXELS):
  """Decodes one encoded image (PNG, JPEG, ...; 1 to 4 channels) to gray uint8 [H, W, 1].

  Decoding is by content, never by file name: the data set's `.jpg` files are PNGs.
  Raises InvalidArgumentError naming `name` when the bytes are not an image, or when its
  header (PNG, JPEG, GIF or BMP) announces more than max_pixels.
  """
  return tf.image.rgb_to_grayscale(decode_rgb(image_bytes, name, max_pixels))


def decode_rgb(image_bytes, name="image", max_pixels=MAX_PIXELS):
  """As `decode_gray`, to RGB uint8 [H, W, 3] (alpha dropped, gray replicated): what a
  face detector sees; `decode_gray` is its gray conversion."""
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
  return tf.io.decode_image(image_bytes, channels=3, expand_animations=False,
                            dtype=tf.uint8)
