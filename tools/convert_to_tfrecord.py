r"""Converts the official CSVs and images into TFRecord shards for train, val and test.

  python -m tools.convert_to_tfrecord --data_dir=data/raw --output_dir=data/tfrecords

The validation split takes about --val_fraction of the training *persons* (a person's
frames never straddle two splits), chosen by --split_seed. Every bad row stops the run
with an error naming the CSV, its line and the image; the output folder is written
under a temporary name and swapped in only when complete.
"""

import csv
import hashlib
import json
import math
import os
import shutil
import sys

from absl import app, flags
import numpy as np
import tensorflow as tf

from fkd_tf import io_utils
from fkd_tf.core.keypoints import NUM_KEYPOINTS, person_id
from fkd_tf.data import records

CSV_FILES = {"train": ("training_frames_keypoints.csv", "training"),
             "test": ("test_frames_keypoints.csv", "test")}
MIN_IMAGE_SIDE = 16


class ConversionError(ValueError):
  """A bad input; the message names the CSV line and file."""


def sha256_of(path):
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      digest.update(chunk)
  return digest.hexdigest()


def read_rows(csv_path):
  """Reads and checks a keypoint CSV: header, then file name + 136 finite floats per row.

  Returns:
    list of (line_number, file_name, keypoints [136] float32).
  """
  if not os.path.isfile(csv_path):
    raise ConversionError(f"{csv_path}: CSV file not found")
  expected = 1 + 2 * NUM_KEYPOINTS
  rows, seen = [], {}
  try:
    with open(csv_path, newline="") as f:
      reader = csv.reader(f)
      header = next(reader, None)
      if header is None:
        raise ConversionError(f"{csv_path}: the file is empty (expected a header row and "
                              "one row per image)")
      for row in reader:
        line = reader.line_num
        if not row or all(not cell.strip() for cell in row):
          continue
        name = row[0].strip()
        where = f"{csv_path} line {line} ({name or 'no file name'})"
        if len(row) != expected:
          raise ConversionError(f"{where}: expected {expected} columns (file name + "
                                f"{2 * NUM_KEYPOINTS} coordinates), found {len(row)}")
        if not name:
          raise ConversionError(f"{where}: empty file name")
        if name in seen:
          raise ConversionError(f"{where}: duplicate file name, first on line {seen[name]}")
        seen[name] = line
        try:
          values = np.array([float(cell) for cell in row[1:]], np.float64)
        except ValueError:
          bad = next(c for c in row[1:] if not _is_float(c))
          raise ConversionError(f"{where}: non-numeric keypoint value {bad!r}") from None
        if not np.all(np.isfinite(values)):
          column = int(np.argmin(np.isfinite(values))) + 1
          raise ConversionError(f"{where}: keypoint column {column} is {row[column]!r}, "
                                "not a finite number")
        rows.append((line, name, values.astype(np.float32)))
  except UnicodeDecodeError as e:
    raise ConversionError(f"{csv_path}: not a text CSV ({e})") from None
  except csv.Error as e:
    raise ConversionError(f"{csv_path}: malformed CSV ({e})") from None
  if not rows:
    raise ConversionError(f"{csv_path}: no data rows after the header")
  return rows


def _is_float(text):
  try:
    float(text)
    return True
  except ValueError:
    return False


def load_image(image_path, where):
  """Reads and decodes one image by content; returns (bytes, height, width)."""
  if not os.path.isfile(image_path):
    raise ConversionError(f"{where}: image {image_path} not found")
  with open(image_path, "rb") as f:
    image_bytes = f.read()
  if not image_bytes:
    raise ConversionError(f"{where}: image {image_path} is empty (0 bytes)")
  try:
    image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
  except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as e:
    raise ConversionError(f"{where}: image {image_path} cannot be decoded "
                          f"({e.message.splitlines()[0]})") from None
  height, width = int(image.shape[0]), int(image.shape[1])
  if min(height, width) < MIN_IMAGE_SIDE:
    raise ConversionError(f"{where}: image {image_path} is {width}x{height}, smaller than "
                          f"{MIN_IMAGE_SIDE} px on a side")
  return image_bytes, height, width


def split_persons(persons, val_fraction, seed):
  """Deterministically picks round(val_fraction * len) persons for validation."""
  ordered = sorted(set(persons))
  count = int(round(val_fraction * len(ordered)))
  if val_fraction > 0:
    count = max(1, count)
  chosen = np.random.RandomState(seed).permutation(len(ordered))[:count]
  return {ordered[i] for i in chosen}


def mean_shape(keypoint_rows):
  """Mean of the keypoints, each face scaled to its keypoint box ([0, 1]^2): [68, 2]."""
  points = np.stack(keypoint_rows).reshape(-1, NUM_KEYPOINTS, 2)
  low, high = points.min(axis=1, keepdims=True), points.max(axis=1, keepdims=True)
  return ((points - low) / (high - low)).mean(axis=0)


def write_split(examples, folder, split, examples_per_shard, progress):
  """Writes examples (already validated) into shards; returns the split's info dict."""
  shard_count = max(1, math.ceil(len(examples) / examples_per_shard))
  shards = []
  for index in range(shard_count):
    name = records.shard_name(split, index, shard_count)
    chunk = examples[index::shard_count]
    with tf.io.TFRecordWriter(os.path.join(folder, name)) as writer:
      for example in chunk:
        writer.write(example.SerializeToString())
        progress.add(1)
    shards.append({"file": name, "count": len(chunk),
                   "sha256": sha256_of(os.path.join(folder, name))})
  return {"count": len(examples), "shards": shards}


def convert(data_dir, output_dir, val_fraction=0.1, split_seed=0, examples_per_shard=1000,
            overwrite=False):
  """Validates every row and image, then writes shards and dataset_info.json.

  Returns:
    The dataset_info dict.
  Raises:
    ConversionError naming the bad CSV line, image or folder; nothing is written then.
  """
  if not 0.0 <= val_fraction < 1.0:
    raise ConversionError(f"--val_fraction={val_fraction} must lie in [0, 1)")
  if examples_per_shard < 1:
    raise ConversionError(f"--examples_per_shard={examples_per_shard} must be >= 1")
  source = {}
  faces = {}
  for split, (csv_name, image_folder) in CSV_FILES.items():
    csv_path = os.path.join(data_dir, csv_name)
    faces[split] = [(line, name, kps, os.path.join(data_dir, image_folder, name),
                     f"{csv_path} line {line} ({name})")
                    for line, name, kps in read_rows(csv_path)]
    source[csv_name] = sha256_of(csv_path)
  fingerprint = hashlib.sha256(json.dumps(
      [source, val_fraction, split_seed], sort_keys=True).encode()).hexdigest()
  _check_output_dir(output_dir, fingerprint, overwrite)

  val_persons = split_persons([person_id(f[1]) for f in faces["train"]], val_fraction,
                              split_seed)
  progress = io_utils.progress_bar(sum(len(v) for v in faces.values()) * 2, "face")
  examples = {"train": [], "val": [], "test": []}
  train_keypoints, max_size = [], [0, 0]
  for split, rows in faces.items():
    for line, name, kps, image_path, where in rows:
      image_bytes, height, width = load_image(image_path, where)
      person = person_id(name)
      target = "val" if split == "train" and person in val_persons else split
      examples[target].append(records.make_example(image_bytes, height, width, name, person,
                                                   kps))
      if target == "train":
        train_keypoints.append(kps)
      max_size = [max(max_size[0], height), max(max_size[1], width)]
      progress.add(1)

  parent = os.path.dirname(os.path.abspath(output_dir))
  os.makedirs(parent, exist_ok=True)
  prefix = f".{os.path.basename(os.path.abspath(output_dir))}.partial-"
  _remove_stale_partials(parent, prefix)
  partial = os.path.join(parent, f"{prefix}{os.getpid()}")
  os.makedirs(partial)
  try:
    splits = {split: write_split(examples[split], partial, split, examples_per_shard,
                                 progress) for split in records.SPLITS}
    for split in ("train", "val"):
      splits[split]["persons"] = len({person_id(f[1]) for f in faces["train"]
                                      if (person_id(f[1]) in val_persons) == (split == "val")})
    splits["test"]["persons"] = len({person_id(f[1]) for f in faces["test"]})
    info = {
        "format_version": records.FORMAT_VERSION,
        "fingerprint": fingerprint,
        "source": {"data_dir": os.path.abspath(data_dir), "csv_sha256": source},
        "val_fraction": val_fraction,
        "split_seed": split_seed,
        "val_persons": sorted(val_persons),
        "splits": splits,
        "max_image_size_hw": max_size,
        "mean_shape_in_box": np.round(mean_shape(train_keypoints).astype(np.float64), 5).tolist(),
    }
    io_utils.write_json(os.path.join(partial, records.DATASET_INFO), info)
    _swap_in(partial, output_dir)
  finally:
    if os.path.exists(partial):
      shutil.rmtree(partial)
  return info


def _remove_stale_partials(parent, prefix):
  """Removes what a killed run left: partial folders whose process is gone."""
  for name in os.listdir(parent):
    if not name.startswith(prefix):
      continue
    pid = name[len(prefix):].split(".")[0]
    try:
      os.kill(int(pid), 0)
      continue  # that converter is still running
    except (ValueError, ProcessLookupError):
      shutil.rmtree(os.path.join(parent, name), ignore_errors=True)
    except PermissionError:
      continue


def _check_output_dir(output_dir, fingerprint, overwrite):
  if not os.path.exists(output_dir) or overwrite:
    return
  if not os.path.isdir(output_dir):
    raise ConversionError(f"--output_dir={output_dir} exists and is not a folder")
  if not os.listdir(output_dir):
    return
  info_path = os.path.join(output_dir, records.DATASET_INFO)
  try:
    with open(info_path) as f:
      previous = json.load(f).get("fingerprint")
  except (OSError, ValueError):
    previous = None
  if previous != fingerprint:
    raise ConversionError(
        f"--output_dir={output_dir} already holds other files or another data set's shards; "
        "pass --overwrite to replace them")


def _swap_in(partial, output_dir):
  """Replaces output_dir with the complete partial folder; the old one goes last."""
  old = None
  if os.path.exists(output_dir):
    old = f"{partial}.old"
    os.rename(output_dir, old)
  os.rename(partial, output_dir)
  if old:
    shutil.rmtree(old)


FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_string("data_dir", "data/raw", "Folder in the official layout: "
                      "training/, test/ and the two *_frames_keypoints.csv files.")
  flags.DEFINE_string("output_dir", "data/tfrecords", "Where shards and dataset_info.json go.")
  flags.DEFINE_float("val_fraction", 0.1, "Share of training persons held out for "
                     "validation.")
  flags.DEFINE_integer("split_seed", 0, "Seed of the person split.")
  flags.DEFINE_integer("examples_per_shard", 1000, "Faces per shard at most.")
  flags.DEFINE_bool("overwrite", False, "Replace an output folder that holds other files.")


def main(argv):
  del argv
  try:
    info = convert(FLAGS.data_dir, FLAGS.output_dir, FLAGS.val_fraction, FLAGS.split_seed,
                   FLAGS.examples_per_shard, FLAGS.overwrite)
  except ConversionError as e:
    sys.exit(f"error: {e}")
  counts = ", ".join(f"{s} {v['count']} faces / {v['persons']} persons"
                     for s, v in info["splits"].items())
  print(f"wrote {FLAGS.output_dir}: {counts}")


if __name__ == "__main__":
  define_flags()
  app.run(main)
