"""The TFRecord format the converter writes and the input pipeline reads.

One tf.train.Example per face: the original encoded image bytes, its height and width,
file name, person id and 136 floats (x0, y0, ..., x67, y67) in original image pixels.
`dataset_info.json` beside the shards says which format version wrote them.
"""

import hashlib
import json
import os

import tensorflow as tf

from fkd_tf.core.keypoints import NUM_KEYPOINTS

FORMAT_VERSION = 1
DATASET_INFO = "dataset_info.json"
SPLITS = ("train", "val", "test")

FEATURES = {
    "image/encoded": tf.io.FixedLenFeature([], tf.string),
    "image/height": tf.io.FixedLenFeature([], tf.int64),
    "image/width": tf.io.FixedLenFeature([], tf.int64),
    "image/file_name": tf.io.FixedLenFeature([], tf.string),
    "image/person_id": tf.io.FixedLenFeature([], tf.string),
    "keypoints/px": tf.io.FixedLenFeature([2 * NUM_KEYPOINTS], tf.float32),
}


def make_example(image_bytes, height, width, file_name, person, keypoints_px):
  """Builds the Example of one face; keypoints_px is a flat sequence of 136 floats."""
  def bytes_feature(value):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

  def int_feature(value):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))

  return tf.train.Example(features=tf.train.Features(feature={
      "image/encoded": bytes_feature(image_bytes),
      "image/height": int_feature(height),
      "image/width": int_feature(width),
      "image/file_name": bytes_feature(file_name.encode("utf-8")),
      "image/person_id": bytes_feature(person.encode("utf-8")),
      "keypoints/px": tf.train.Feature(
          float_list=tf.train.FloatList(value=[float(v) for v in keypoints_px])),
  }))


def shard_name(split, index, count):
  return f"{split}-{index:05d}-of-{count:05d}.tfrecord"


class DatasetError(ValueError):
  """A TFRecord folder that cannot be used; the message names the path."""


def read_dataset_info(tfrecord_dir):
  """Loads and checks dataset_info.json: it exists, has our format version, shards exist.

  Raises:
    DatasetError naming the folder or file at fault.
  """
  info_path = os.path.join(tfrecord_dir, DATASET_INFO)
  # tf.io.gfile: a cluster's converted data may sit on gs:// as its run folders do.
  if not tf.io.gfile.isdir(tfrecord_dir):
    raise DatasetError(f"TFRecord folder {tfrecord_dir!r} does not exist; "
                       "run `python -m tools.convert_to_tfrecord` first")
  if not tf.io.gfile.exists(info_path):
    raise DatasetError(f"{info_path!r} is missing: {tfrecord_dir!r} holds no converted "
                       "data set (run `python -m tools.convert_to_tfrecord`)")
  try:
    with tf.io.gfile.GFile(info_path) as f:
      info = json.load(f)
  except (OSError, tf.errors.OpError, json.JSONDecodeError) as e:
    raise DatasetError(f"cannot read {info_path!r}: {e}") from e
  version = info.get("format_version")
  if version != FORMAT_VERSION:
    raise DatasetError(f"{info_path!r} has format_version {version!r} but this fkd_tf reads "
                       f"{FORMAT_VERSION}; convert the data again")
  for split, split_info in info.get("splits", {}).items():
    for shard in split_info["shards"]:
      path = os.path.join(tfrecord_dir, shard["file"])
      if not tf.io.gfile.exists(path):
        raise DatasetError(f"shard {path!r} of split {split!r} listed in {info_path!r} "
                           "is missing")
  return info


def shard_paths(tfrecord_dir, split, info=None):
  """The shard files of one split, in order, each checked against the sha256 that
  dataset_info.json records for it; raises DatasetError if it has none or one differs."""
  info = info or read_dataset_info(tfrecord_dir)
  if split not in info.get("splits", {}) or not info["splits"][split]["shards"]:
    raise DatasetError(f"split {split!r} has no shards in {tfrecord_dir!r}")
  paths = []
  for shard in info["splits"][split]["shards"]:
    path = os.path.join(tfrecord_dir, shard["file"])
    if shard.get("sha256"):
      verify_shard(path, shard["sha256"], split)
    paths.append(path)
  return paths


# Remote shards already hashed in this process, by (path, size, modification time): a
# training builds its datasets several times, and on gs:// each hash is a download. Local
# shards are hashed every time (the whole 239 MB set in 0.48 s here): a local file
# rewritten within one clock tick keeps its modification time, so that key could miss it.
_VERIFIED_REMOTE = set()


def _sha256_of(path):
  digest = hashlib.sha256()
  with tf.io.gfile.GFile(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      digest.update(chunk)
  return digest.hexdigest()


def verify_shard(path, sha256, split):
  """Raises DatasetError naming the shard when its bytes are not those the converter wrote.

  Without it a truncated or damaged shard fails mid-epoch as "DataLossError: truncated
  record at 157444" or "corrupted record at 12", and an edited one as a parse or decode
  error of some record: none names the file, and evaluation loses the whole split.
  """
  stat = tf.io.gfile.stat(path)
  remote = "://" in path
  key = (path, stat.length, stat.mtime_nsec)
  if remote and key in _VERIFIED_REMOTE:
    return
  actual = _sha256_of(path)
  if actual != sha256:
    raise DatasetError(
        f"shard {path!r} of split {split!r} is not the file the converter wrote: its "
        f"sha256 is {actual[:12]}..., {DATASET_INFO} records {sha256[:12]}... ({stat.length} "
        "bytes now); it was truncated, damaged or edited: convert the data again")
  if remote:
    _VERIFIED_REMOTE.add(key)
