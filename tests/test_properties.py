"""Property-based tests: random bytes and rows give a result or the documented error."""

import os
import struct

from hypothesis import HealthCheck, given, settings, strategies as st
import numpy as np
import tensorflow as tf

from fkd_tf.data import decode
from fkd_tf.data import convert
import fakes

PNG = fakes.encode(np.arange(24 * 30, dtype=np.uint8).reshape(24, 30))
SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(st.one_of(st.binary(max_size=200),
                 st.binary(max_size=120).map(lambda b: b"\x89PNG" + b),
                 st.binary(max_size=120).map(lambda b: b"GIF89a" + b),
                 st.binary(max_size=120).map(lambda b: b"BM" + b),
                 st.integers(0, len(PNG) - 1).map(lambda n: PNG[:n]),
                 st.tuples(st.integers(0, len(PNG) - 1), st.integers(0, 255)).map(
                     lambda t: PNG[:t[0]] + bytes([t[1]]) + PNG[t[0] + 1:])))
def test_decode_gives_an_image_or_invalid_argument(data):
  try:
    image = decode.decode_gray(tf.constant(data)).numpy()
  except tf.errors.InvalidArgumentError:
    return
  assert image.ndim == 3 and image.shape[-1] == 1 and image.dtype == np.uint8


@SETTINGS
@given(st.integers(0, 2**16 - 1), st.integers(0, 2**16 - 1),
       st.integers(-2**31, 2**31 - 1), st.integers(-2**31, 2**31 - 1))
def test_gif_and_bmp_header_sizes_are_read_exactly(gif_width, gif_height, bmp_width,
                                                   bmp_height):
  gif = b"GIF89a" + struct.pack("<HH", gif_width, gif_height) + bytes(3)
  assert int(decode.header_pixels(tf.constant(gif))) == gif_width * gif_height
  bmp = b"BM" + bytes(16) + struct.pack("<ii", bmp_width, bmp_height)
  assert int(decode.header_pixels(tf.constant(bmp))) == abs(bmp_width) * abs(bmp_height)


CELL = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr),
                 st.text(alphabet="0123456789.-eabc, \"", max_size=8),
                 st.integers(-1000, 1000).map(str))


@SETTINGS
@given(st.lists(st.lists(CELL, min_size=0, max_size=140), min_size=0, max_size=4))
def test_csv_reader_gives_rows_or_a_conversion_error(tmp_path, rows):
  path = os.path.join(tmp_path, "training_frames_keypoints.csv")
  with open(path, "w") as f:
    f.write("," + ",".join(str(i) for i in range(136)) + "\n")
    for i, row in enumerate(rows):
      f.write(f"P_{i:02d}.jpg," + ",".join(row) + "\n")
  try:
    parsed = convert.read_rows(path)
  except convert.ConversionError as e:
    assert "training_frames_keypoints.csv" in str(e)
    return
  for _, _, values in parsed:
    assert values.shape == (136,) and np.all(np.isfinite(values))
