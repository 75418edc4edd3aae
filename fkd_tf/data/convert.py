"""The official CSVs and images, checked row by row, as TFRecord shards: train, val, test.

The command is `python -m tools.convert_to_tfrecord` (`fkd-convert`).

The validation split takes about --val_fraction of the training *persons* (a person's
frames never straddle two splits), chosen by --split_seed. Every bad row stops the run
with an error naming the CSV, its line and the image; the output folder is written
under a temporary name and swapped in only when complete.
"""

import hashlib
import io
import json
import math
import os
import re
import shutil
import stat
import warnings

import numpy as np
import pandas as pd
from PIL import Image
import tensorflow as tf

from fkd_tf.utils import io_utils
from fkd_tf.core.keypoints import NUM_KEYPOINTS, person_id
from fkd_tf.data import records

CSV_FILES = {"train": ("training_frames_keypoints.csv", "training"),
             "test": ("test_frames_keypoints.csv", "test")}
CSV_COLUMNS = 1 + 2 * NUM_KEYPOINTS  # file name, then x0, y0, ..., x67, y67
MIN_IMAGE_SIDE = 16
# The data set's largest image is under 500 px a side; 4096 leaves room for other faces
# while refusing a small file that decodes to gigabytes (training would die on it later
# with "image is too large", naming no file).
MAX_IMAGE_SIDE = 4096
# The data set's largest image file is 242 KB; a 4096x4096 RGBA PNG stored without
# compression about 64 MiB. A larger file is refused from its size, before it is read (an
# 8 GB sparse file was read whole, into a MemoryError).
MAX_IMAGE_BYTES = 64 << 20
# How far keypoints may lie outside their image, as a share of its side: the data set's
# farthest is 9.9 % (Eliza_Dushku_21.jpg's jaw, x = -23 in a 233 px wide image); 1e30 or
# -3e38 is a broken row, and would shift the mean shape.
KEYPOINT_MARGIN = 0.5
# A first cell ending like this means the first row is a face, not the header.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")


class ConversionError(ValueError):
  """A bad input; the message names the CSV line and file."""


def _read_cells(csv_path):
  """A keypoint CSV's cells as strings: DataFrame row i is line i + 1 of the file.

  The python engine pads a short row with NaN but keeps an empty cell as "", so a missing
  column is told from an empty one. Rows up to twice the expected width are counted; a
  wider one makes pandas raise, naming its line.
  """
  if not os.path.isfile(csv_path):
    raise ConversionError(f"{csv_path}: CSV file not found")
  try:
    return pd.read_csv(csv_path, header=None, names=range(2 * CSV_COLUMNS), index_col=False,
                       dtype=str, keep_default_na=False, skip_blank_lines=False,
                       engine="python", encoding="utf-8-sig")
  except UnicodeDecodeError as e:
    raise ConversionError(f"{csv_path}: not a text CSV ({e})") from None
  except pd.errors.EmptyDataError:
    return pd.DataFrame()
  except pd.errors.ParserError as e:
    too_wide = re.search(r"line (\d+), saw (\d+)", str(e))
    if too_wide:
      line, found = int(too_wide[1]), too_wide[2]
      with open(csv_path, encoding="utf-8-sig") as f:
        text = f.read().splitlines()
      name = text[line - 1].split(",", 1)[0].strip(' "') if line <= len(text) else "?"
      raise ConversionError(f"{csv_path} line {line} ({name}): expected {CSV_COLUMNS} columns "
                            f"(file name + {2 * NUM_KEYPOINTS} coordinates), found "
                            f"{found}") from None
    raise ConversionError(f"{csv_path}: malformed CSV ({e})") from None


def _is_nan_text(cell):
  return cell.strip().lstrip("+-").lower() == "nan"


def read_rows(csv_path):
  """Reads and checks a keypoint CSV: header, then file name + 136 finite floats per row.

  Returns:
    list of (line_number, file_name, keypoints [136] float32); line 1 is the header.
  """
  cells = _read_cells(csv_path)
  if cells.empty:
    raise ConversionError(f"{csv_path}: the file is empty (expected a header row and "
                          "one row per image)")
  first_cell = cells.iat[0, 0]
  if isinstance(first_cell, str) and first_cell.strip().lower().endswith(IMAGE_EXTENSIONS):
    raise ConversionError(f"{csv_path} line 1 ({first_cell.strip()}): the file has no header "
                          f"row; its first line must be the header ,0,1,...,"
                          f"{2 * NUM_KEYPOINTS - 1} (without it the first face is lost)")
  field_counts = cells.notna().sum(axis=1).to_numpy()
  coordinates = cells.iloc[:, 1:CSV_COLUMNS]
  numbers = coordinates.apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
  # The records hold float32: 1e39 is finite as a float64 but infinite once stored.
  with np.errstate(over="ignore"):
    keypoints = numbers.astype(np.float32)
  rows, seen = [], {}
  for index in range(1, len(cells)):
    line = index + 1
    name = cells.iat[index, 0].strip() if field_counts[index] else ""
    if not name and all(not cell.strip() for cell in cells.iloc[index].dropna()):
      continue  # a blank line (or one of bare commas)
    where = f"{csv_path} line {line} ({name or 'no file name'})"
    if field_counts[index] != CSV_COLUMNS:
      raise ConversionError(f"{where}: expected {CSV_COLUMNS} columns (file name + "
                            f"{2 * NUM_KEYPOINTS} coordinates), found {field_counts[index]}")
    if not name:
      raise ConversionError(f"{where}: empty file name")
    if "\n" in name or "\r" in name:
      raise ConversionError(f"{where}: the file name spans several lines (an unclosed "
                            "quote?)")
    try:
      person_id(name)
    except ValueError as e:
      raise ConversionError(f"{where}: {e}") from None
    # ./X.jpg and X.jpg are the same image.
    key = os.path.normpath(name)
    if key in seen:
      raise ConversionError(f"{where}: duplicate file name, first on line {seen[key]}")
    seen[key] = line
    for column in np.flatnonzero(np.isnan(numbers[index])) + 1:
      if not _is_nan_text(cells.iat[index, column]):
        raise ConversionError(f"{where}: non-numeric keypoint value "
                              f"{cells.iat[index, column]!r} in column {column}")
    finite = np.isfinite(keypoints[index])
    if not finite.all():
      column = int(np.argmin(finite)) + 1
      raise ConversionError(f"{where}: keypoint column {column} is "
                            f"{cells.iat[index, column]!r}, not a finite float32 number")
    width, height = np.ptp(keypoints[index, 0::2]), np.ptp(keypoints[index, 1::2])
    if width == 0 or height == 0:
      raise ConversionError(f"{where}: the keypoints span a box of zero "
                            f"{'width' if width == 0 else 'height'} (all x or all y equal); "
                            "the mean shape cannot be scaled to it")
    rows.append((line, name, keypoints[index]))
  if not rows:
    raise ConversionError(f"{csv_path}: no data rows after the header")
  return rows


def image_path_inside(image_dir, name, where):
  """The image's path, refused when the name or a link leads out of image_dir."""
  image_path = os.path.join(image_dir, name)
  resolved, folder = os.path.realpath(image_path), os.path.realpath(image_dir)
  if os.path.commonpath([resolved, folder]) != folder or resolved == folder:
    raise ConversionError(f"{where}: image name {name!r} leads out of {image_dir} (to "
                          f"{resolved}); names must stay inside the split's folder")
  return image_path


def _refuse_large_header(image_bytes, image_path, where):
  """Refuses an image whose header declares a side over MAX_IMAGE_SIDE, before decoding it.

  PIL reads only the header here; a format it cannot read is left to the decoder.
  """
  try:
    with warnings.catch_warnings():
      warnings.simplefilter("ignore", Image.DecompressionBombWarning)
      with Image.open(io.BytesIO(image_bytes)) as image:
        width, height = image.size
  except Image.DecompressionBombError:
    raise ConversionError(f"{where}: image {image_path} declares more than "
                          f"{2 * Image.MAX_IMAGE_PIXELS} pixels, larger than "
                          f"{MAX_IMAGE_SIDE} px on a side") from None
  except (OSError, ValueError, SyntaxError):
    return
  if max(width, height) > MAX_IMAGE_SIDE:
    _check_size(image_path, where, width, height)


def _check_size(image_path, where, width, height):
  if max(width, height) > MAX_IMAGE_SIDE:
    raise ConversionError(f"{where}: image {image_path} is {width}x{height}, larger than "
                          f"{MAX_IMAGE_SIDE} px on a side")
  if min(width, height) < MIN_IMAGE_SIDE:
    raise ConversionError(f"{where}: image {image_path} is {width}x{height}, smaller than "
                          f"{MIN_IMAGE_SIDE} px on a side")


def _file_kind(mode):
  kinds = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe"),
           (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
           (stat.S_ISSOCK, "a socket"))
  return next((kind for test, kind in kinds if test(mode)), "not a regular file")


def _read_image_file(image_path, where):
  """The file's bytes, after checking from its metadata alone that it is a regular file
  of at most MAX_IMAGE_BYTES (a named pipe would block the read, a huge file fill memory)."""
  try:
    info = os.stat(image_path)
  except FileNotFoundError:
    raise ConversionError(f"{where}: image {image_path} not found") from None
  except OSError as e:
    raise ConversionError(f"{where}: image {image_path} cannot be read "
                          f"({e.strerror or e})") from None
  if not stat.S_ISREG(info.st_mode):
    raise ConversionError(f"{where}: image {image_path} is {_file_kind(info.st_mode)}, not "
                          "a regular file")
  if info.st_size > MAX_IMAGE_BYTES:
    raise ConversionError(f"{where}: image {image_path} is {info.st_size} bytes, more than "
                          f"the {MAX_IMAGE_BYTES} allowed")
  with open(image_path, "rb") as f:
    image_bytes = f.read(MAX_IMAGE_BYTES + 1)  # the file may have grown since
  if len(image_bytes) > MAX_IMAGE_BYTES:
    raise ConversionError(f"{where}: image {image_path} is more than {MAX_IMAGE_BYTES} "
                          "bytes")
  return image_bytes


def check_keypoints_near_image(keypoints, height, width, where):
  """Refuses keypoints more than KEYPOINT_MARGIN of the image's side outside it.

  keypoints: [136] x0, y0, ..., x67, y67 in pixels of the image.
  """
  points = np.asarray(keypoints, np.float64).reshape(-1, 2)
  size = np.array([width, height], np.float64)
  low, high = -KEYPOINT_MARGIN * size, (1 + KEYPOINT_MARGIN) * size
  outside = ~((points >= low) & (points <= high))  # NaN is outside too
  if outside.any():
    point, axis = (int(i) for i in np.argwhere(outside)[0])
    raise ConversionError(
        f"{where}: keypoint {point} {'xy'[axis]} = {points[point, axis]:g} (CSV column "
        f"{2 * point + axis + 1}) lies far outside the {width}x{height} image (allowed "
        f"{low[axis]:g} .. {high[axis]:g}, {KEYPOINT_MARGIN:.0%} of its side beyond each "
        "edge)")


def load_image(image_path, where):
  """Reads and decodes one image by content; returns (bytes, height, width)."""
  image_bytes = _read_image_file(image_path, where)
  if not image_bytes:
    raise ConversionError(f"{where}: image {image_path} is empty (0 bytes)")
  _refuse_large_header(image_bytes, image_path, where)
  try:
    image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
  except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as e:
    raise ConversionError(f"{where}: image {image_path} cannot be decoded "
                          f"({e.message.splitlines()[0]})") from None
  height, width = int(image.shape[0]), int(image.shape[1])
  _check_size(image_path, where, width, height)
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
                   "sha256": io_utils.sha256_of(os.path.join(folder, name))})
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
  _refuse_output_around_data(output_dir, data_dir)
  source = {}
  faces = {}
  for split, (csv_name, image_folder) in CSV_FILES.items():
    csv_path = os.path.join(data_dir, csv_name)
    image_dir = os.path.join(data_dir, image_folder)
    faces[split] = []
    for line, name, kps in read_rows(csv_path):
      where = f"{csv_path} line {line} ({name})"
      faces[split].append((line, name, kps, image_path_inside(image_dir, name, where), where))
    source[csv_name] = io_utils.sha256_of(csv_path)
  fingerprint = hashlib.sha256(json.dumps(
      [source, val_fraction, split_seed], sort_keys=True).encode()).hexdigest()
  _check_output_dir(output_dir, fingerprint, overwrite)

  val_persons = split_persons([person_id(f[1]) for f in faces["train"]], val_fraction,
                              split_seed)
  face_count = sum(len(v) for v in faces.values())
  # One bar per pass, each counting every face once (a single bar over both passes
  # counted 8464 "faces" for the data set's 4232).
  print(f"reading and checking {face_count} faces")
  progress = io_utils.progress_bar(face_count, "face")
  examples = {"train": [], "val": [], "test": []}
  train_keypoints, max_size = [], [0, 0]
  for split, rows in faces.items():
    for line, name, kps, image_path, where in rows:
      image_bytes, height, width = load_image(image_path, where)
      check_keypoints_near_image(kps, height, width, where)
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
  print(f"writing {face_count} faces into shards")
  progress = io_utils.progress_bar(face_count, "face")
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
    io_utils.replace_path(partial, output_dir)
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


def _refuse_output_around_data(output_dir, data_dir):
  """Refuses an output_dir equal to, above or inside data_dir: --overwrite swaps the output
  folder out and deletes it, which would take the raw images and CSVs with it."""
  output, data = os.path.realpath(output_dir), os.path.realpath(data_dir)
  common = os.path.commonpath([output, data])
  if common == output == data:
    relation = "is"
  elif common == output:
    relation = "contains"
  elif common == data:
    relation = "lies inside"
  else:
    return
  raise ConversionError(f"--output_dir={output_dir} {relation} --data_dir={data_dir}; write "
                        "the records to a folder beside the raw data, not around or inside it")


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
