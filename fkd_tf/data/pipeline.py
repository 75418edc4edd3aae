"""Host side of the input: parse, decode, gray, pad into a canvas, batch, prefetch.

The host does only what needs the CPU (reading records, decoding PNG/JPEG); every
geometric and photometric change happens on whole batches in `fkd_tf.core.augment`, inside
the train step, so it runs on the accelerator when there is one. Decoding itself is
`fkd_tf.data.decode`, shared with serving.
"""

import tensorflow as tf

from fkd_tf.core.keypoints import LEFT_EYE_OUTER, NUM_KEYPOINTS, RIGHT_EYE_OUTER
from fkd_tf.data import records
from fkd_tf.data.decode import decode_gray, is_image

# Keypoints parsed at any length, so that a record with too few or too many is refused
# naming its face (a fixed length fails as "Can't parse serialized Example", naming none).
_PARSED_FEATURES = {**records.FEATURES, "keypoints/px": tf.io.VarLenFeature(tf.float32)}


def _eye_distance(keypoints):
  """The outer eye corners' distance of a flat [136] keypoint vector; 1 for a record of
  another length, which fails its own check (a reshape here would fail first, unnamed)."""
  def distance():
    points = tf.reshape(keypoints, [NUM_KEYPOINTS, 2])
    return tf.norm(points[LEFT_EYE_OUTER] - points[RIGHT_EYE_OUTER])
  return tf.cond(tf.size(keypoints) == 2 * NUM_KEYPOINTS, distance, lambda: 1.0)


def _checked(example):
  """The record's encoded image and [68, 2] keypoints, after checks whose errors name the
  record's file: 136 finite keypoint values, bytes of an image format we decode.

  Shards from the converter pass these by construction (and `records.shard_paths` checks
  their hashes); these catch records written some other way.
  """
  name = example["image/file_name"]
  keypoints = example["keypoints/px"].values
  checks = [
      tf.debugging.Assert(tf.size(keypoints) == 2 * NUM_KEYPOINTS, [
          "the record of", name, "holds", tf.size(keypoints),
          f"keypoint values, not {2 * NUM_KEYPOINTS}"]),
      tf.debugging.Assert(tf.reduce_all(tf.math.is_finite(keypoints)), [
          "the record of", name, "holds keypoints that are NaN or infinite"]),
      # NME_io divides by this distance: zero would report an infinite error silently.
      tf.debugging.Assert(_eye_distance(keypoints) > 0.0, [
          "the record of", name, "holds its outer eye corners (points 36 and 45) at one "
          "spot"]),
      tf.debugging.Assert(is_image(example["image/encoded"]), [
          "the record of", name, "holds no PNG, JPEG, GIF or BMP image"]),
  ]
  with tf.control_dependencies(checks):
    return (tf.identity(example["image/encoded"]),
            tf.reshape(keypoints, [NUM_KEYPOINTS, 2]))


def parse_face(serialized, with_bytes=False):
  """One serialized Example -> dict of host tensors (variable-size image)."""
  example = tf.io.parse_single_example(serialized, _PARSED_FEATURES)
  image_bytes, keypoints_px = _checked(example)
  image = decode_gray(image_bytes)
  face = {
      "image": image,
      "image_size": tf.shape(image)[:2],
      "keypoints_px": keypoints_px,
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
    split: "train", "val" or "test", or several joined by commas ("train,val": their
      faces together, shuffled as one set when training).
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
  splits = split.split(",")
  paths = [path for name in splits for path in records.shard_paths(tfrecord_dir, name, info)]
  count = sum(info["splits"][name]["count"] for name in splits)
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
