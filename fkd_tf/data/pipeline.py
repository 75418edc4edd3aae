"""Host side of the input: parse, decode, gray, pad into a canvas, batch, prefetch.

The host does only what needs the CPU (reading records, decoding PNG/JPEG); every
geometric and photometric change happens on whole batches in `fkd_tf.augment`, inside
the train step, so it runs on the accelerator when there is one.
"""

import tensorflow as tf

from fkd_tf import records
from fkd_tf.keypoints import NUM_KEYPOINTS

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


def parse_face(serialized, with_bytes=False):
  """One serialized Example -> dict of host tensors (variable-size image)."""
  example = tf.io.parse_single_example(serialized, records.FEATURES)
  image = decode_gray(example["image/encoded"])
  face = {
      "image": image,
      "image_size": tf.shape(image)[:2],
      "keypoints_px": tf.reshape(example["keypoints/px"], [NUM_KEYPOINTS, 2]),
      "file_name": example["image/file_name"],
  }
  if with_bytes:
    face["image_bytes"] = example["image/encoded"]
  return face


def make_dataset(tfrecord_dir, split, batch_size, training, seed=0, with_names=False,
                 with_bytes=False, drop_remainder=False, num_input_pipelines=1,
                 input_pipeline_id=0, cache=True, max_examples=0):
  """Builds the batched dataset of one split.

  Order: files -> shard by worker -> parse/decode -> cache -> shuffle -> pad -> prefetch.

  Args:
    tfrecord_dir: folder with dataset_info.json and shards from tools.convert_to_tfrecord.
    split: "train", "val" or "test".
    batch_size: faces per batch (per input pipeline).
    training: shuffle each epoch (with `seed`).
    with_names: keep "file_name" (a string tensor: leave it out of device steps).
    with_bytes: keep the encoded "image_bytes" (for the serving path).
    num_input_pipelines, input_pipeline_id: multi-worker sharding, by record.
    max_examples: when positive, only the first max_examples faces (smoke runs).
  Returns:
    Dataset of dicts: image [N, H, W, 1] uint8 (zero padded to the largest in the batch),
    image_size [N, 2] int32 (height, width), keypoints_px [N, 68, 2] float32.
  """
  info = records.read_dataset_info(tfrecord_dir)
  paths = records.shard_paths(tfrecord_dir, split, info)
  count = info["splits"][split]["count"]
  if max_examples:
    count = min(count, max_examples)
  dataset = tf.data.TFRecordDataset(paths, num_parallel_reads=tf.data.AUTOTUNE)
  if max_examples:
    dataset = dataset.take(max_examples)
  if num_input_pipelines > 1:
    dataset = dataset.shard(num_input_pipelines, input_pipeline_id)
  dataset = dataset.map(lambda s: parse_face(s, with_bytes),
                        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  if not with_names:
    dataset = dataset.map(lambda face: {k: v for k, v in face.items() if k != "file_name"})
  if cache:
    # Decoded gray faces of the whole set take ~140 MB; decoding once saves an epoch's PNGs.
    dataset = dataset.cache()
  if training:
    dataset = dataset.shuffle(4096, seed=seed, reshuffle_each_iteration=True)
  dataset = dataset.padded_batch(batch_size, drop_remainder=drop_remainder)
  if num_input_pipelines == 1:
    # Tells Keras the epoch length up front (no "ran out of data" guess on epoch 1).
    batches = count // batch_size if drop_remainder else -(-count // batch_size)
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(batches))
  return dataset.prefetch(tf.data.AUTOTUNE)
