"""Keypoints for files and videos at scale: listing, batching, tables, .pts, pictures.

The library under `fkd_tf.predict` (the command line): inputs are walked and checked
(regular files only, size-limited, formats the model reads), predicted in batches through
`fkd_tf.inference.api`, and written as per-file JSON / PNG (/ CSV), one CSV or JSONL table, iBUG
.pts files, or, for videos, a row per frame and an annotated video.
"""

import contextlib
import dataclasses
import io
import json
import os
import stat

import numpy as np
from PIL import Image
import tensorflow as tf

from fkd_tf.inference import detect, visualize
from fkd_tf.utils import io_utils
from fkd_tf.data import decode

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".m4v")
# What the served graph decodes (data/decode.py); Pillow reads more (WebP, TIFF), and the
# model would then fail on the whole batch with an error naming no file.
MODEL_FORMATS = ("PNG", "JPEG", "GIF", "BMP")
# A larger "image" is refused before it is read: 64 MB is beyond any photo's PNG.
MAX_FILE_BYTES = 64 * 1024 * 1024
TABLE_SUFFIXES = (".csv", ".jsonl")


class InputError(ValueError):
  """A file that cannot be predicted; the message starts with its path."""


@dataclasses.dataclass
class Options:
  """What to write and how to find faces."""
  output_dir: str = None       # per-file JSON and PNG (and CSV, annotated video); None: none
  detector: str = None         # None: the whole image is the face's frame
  write_csv: bool = False      # a CSV per file beside its JSON
  write_pts: bool = False      # iBUG .pts beside each input image
  overwrite_pts: bool = False  # replace .pts files that are already there
  batch_size: int = 32         # faces per call of the model


# --- Inputs -------------------------------------------------------------------------------

def _file_kind(mode):
  for test, kind in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"),
                     (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                     (stat.S_ISSOCK, "a socket")):
    if test(mode):
      return kind
  return "not a regular file"


def check_regular_file(path):
  """Raises InputError unless `path` (links followed) is a regular file of allowed size."""
  try:
    info = os.stat(path)
  except OSError as e:
    raise InputError(f"{path}: cannot be read ({e.strerror})") from None
  if not stat.S_ISREG(info.st_mode):
    raise InputError(f"{path}: {_file_kind(info.st_mode)}, not a regular file; skipped")
  if info.st_size > MAX_FILE_BYTES:
    raise InputError(f"{path}: {info.st_size} bytes, over the {MAX_FILE_BYTES} byte limit; "
                     "skipped")


def list_inputs(paths, skip_folder=None):
  """Files to predict under the given files and folders.

  Folders are walked recursively in sorted order, taking names with an image or video
  extension and never entering `skip_folder` (the output folder, whose PNGs would
  otherwise be predicted on the next run). A file named directly is taken whatever its
  extension. The same file named twice is taken once.
  Returns:
    (files, errors): paths in order, and InputErrors for entries that are not regular
    files or do not exist (each names its path).
  """
  skip = os.path.realpath(skip_folder) if skip_folder else None
  files, errors, seen = [], [], set()

  def take(path):
    try:
      check_regular_file(path)
    except InputError as e:
      errors.append(e)
      return
    if os.path.abspath(path) not in seen:
      seen.add(os.path.abspath(path))
      files.append(path)

  for path in paths:
    if not os.path.isdir(path):
      take(path)
      continue
    for folder, subfolders, names in os.walk(path):
      subfolders[:] = sorted(s for s in subfolders
                             if os.path.realpath(os.path.join(folder, s)) != skip)
      for name in sorted(names):
        if name.lower().endswith(IMAGE_EXTENSIONS + VIDEO_EXTENSIONS):
          take(os.path.join(folder, name))
  return files, errors


def output_names(files):
  """Each file's path relative to the files' common folder: unique, extension kept."""
  absolute = [os.path.abspath(f) for f in files]
  if not absolute:
    return []
  root = os.path.commonpath([os.path.dirname(a) for a in absolute])
  return [os.path.relpath(a, root) for a in absolute]


def read_image(path):
  """(encoded bytes, RGB uint8 [H, W, 3]) of an image the model can decode.

  Raises:
    InputError naming the file: not a regular file, too large, not an image, or a format
    the model does not read.
  """
  check_regular_file(path)
  with open(path, "rb") as f:
    image_bytes = f.read(MAX_FILE_BYTES + 1)
  if len(image_bytes) > MAX_FILE_BYTES:
    raise InputError(f"{path}: over the {MAX_FILE_BYTES} byte limit; skipped")
  try:
    picture = Image.open(io.BytesIO(image_bytes))
    picture_format = picture.format
    if picture_format in MODEL_FORMATS:
      if picture.width * picture.height > decode.MAX_PIXELS:
        raise InputError(f"{path}: {picture.width}x{picture.height} is over "
                         f"{decode.MAX_PIXELS} pixels; skipped")
      picture.load()
  except InputError:
    raise
  except Exception as e:  # pylint: disable=broad-except  (Pillow raises many types)
    raise InputError(f"{path}: not a readable image ({e})") from None
  if picture_format not in MODEL_FORMATS:
    raise InputError(f"{path}: a {picture_format} image; the model reads "
                     f"{', '.join(MODEL_FORMATS)} (convert it first)")
  return image_bytes, np.asarray(picture.convert("RGB"))


# --- Faces and keypoints ------------------------------------------------------------------

def find_faces(rgb, detector):
  """(regions [K, 4], boxes [K, 4] or None, scores [K] or None) for one image."""
  if detector is None:
    height, width = rgb.shape[:2]
    return np.array([[0, 0, width, height]], np.float32), None, None
  boxes, scores = detect.detect_faces(rgb, detector)
  return detect.crop_regions(boxes, detector), boxes, scores


def predict_faces(model, images, regions, batch_size, detected=False):
  """Keypoints [K, 68, 2] of K faces: images[i] (bytes or array) framed by regions[i].

  Whole images go in with an all-zero box (every stage of the model runs); a detection's
  crop region goes in as the keypoint box it implies, which the model takes as its box.
  """
  boxes = (detect.keypoint_boxes_of_regions(regions) if detected
           else np.zeros((len(images), 4), np.float32))
  keypoints = [model.predict(images[i:i + batch_size], boxes=boxes[i:i + batch_size])
               for i in range(0, len(images), batch_size)]
  return np.concatenate(keypoints) if keypoints else np.zeros((0, 68, 2), np.float32)


def _rounded(values):
  return [round(float(v), 2) for v in values]


def face_records(regions, boxes, scores, keypoints):
  faces = []
  for i, (region, points) in enumerate(zip(regions, keypoints)):
    face = {"region": _rounded(region), "keypoints": np.round(points, 2).tolist()}
    if boxes is not None:
      face["box"] = _rounded(boxes[i])
      face["score"] = None if np.isnan(scores[i]) else round(float(scores[i]), 4)
    faces.append(face)
  return faces


TABLE_COLUMNS = (["file", "frame", "face", "score", "region_x0", "region_y0", "region_x1",
                  "region_y1"] + [f"{axis}{i}" for i in range(68) for axis in "xy"])


def table_rows(record):
  """CSV rows (lists of strings) of one record: a row per face, none for no face."""
  frame = "" if record.get("frame") is None else str(record["frame"])
  rows = []
  for i, face in enumerate(record["faces"]):
    score = "" if face.get("score") is None else f"{face['score']:.4f}"
    rows.append([record["file"], frame, str(i), score] + [f"{v:.2f}" for v in face["region"]]
                + [f"{v:.2f}" for v in np.reshape(face["keypoints"], -1)])
  return rows


def _csv_line(row):
  # File names may hold commas or quotes: quote them as CSV does.
  return ",".join('"' + v.replace('"', '""') + '"' if any(c in v for c in ',"\n') else v
                  for v in row)


class Table(contextlib.ExitStack):
  """The --output file: CSV (a row per face) or JSONL (a record per image or frame).

    with Table("preds.csv") as table:
      table.add(record)

  Written to a temporary file renamed into place when the block ends without an
  exception, so an interrupted run never leaves a truncated table under the final name.
  """

  def __init__(self, path):
    super().__init__()
    self.path = path
    self.jsonl = path.lower().endswith(".jsonl")

  def __enter__(self):
    super().__enter__()
    self._file = self.enter_context(open(self.enter_context(io_utils.atomic_path(self.path)),
                                         "w"))
    if not self.jsonl:
      self._file.write(_csv_line(TABLE_COLUMNS) + "\n")
    return self

  def add(self, record):
    if self.jsonl:
      self._file.write(json.dumps(record, sort_keys=True) + "\n")
    else:
      self._file.writelines(_csv_line(row) + "\n" for row in table_rows(record))


def pts_text(points):
  """iBUG .pts of [68, 2] keypoints. The format counts pixels from 1 (MATLAB's habit):
  the first pixel's centre is (1, 1), ours is (0.5, 0.5), hence + 0.5."""
  lines = ["version: 1", f"n_points: {len(points)}", "{"]
  lines += [f"{x + 0.5:.3f} {y + 0.5:.3f}" for x, y in np.asarray(points, np.float64)]
  return "\n".join(lines + ["}"]) + "\n"


def pts_paths(path, faces, stems_taken):
  """Where the .pts of each face go: <stem>.pts, or <stem>_1.pts ... for several faces
  (300-W's habit). `<name>.pts` (extension kept) when another input shares the stem."""
  base = os.path.splitext(path)[0]
  if stems_taken.get(base, 0) > 1:
    base = path
  if faces == 1:
    return [base + ".pts"]
  return [f"{base}_{i + 1}.pts" for i in range(faces)]


def write_file_outputs(record, rgb, name, options, stems_taken=None):
  """Per-file outputs of an image: JSON, PNG (and CSV) under output_dir; .pts beside it."""
  keypoints = [np.asarray(face["keypoints"]) for face in record["faces"]]
  if options.write_pts:
    for pts_path, points in zip(pts_paths(record["file"], len(keypoints), stems_taken or {}),
                                keypoints):
      if os.path.exists(pts_path) and not options.overwrite_pts:
        raise InputError(f"{pts_path}: already exists (annotations?); not overwritten "
                         "without --overwrite_pts")
      io_utils.write_text(pts_path, pts_text(points))
  if not options.output_dir:
    return
  stem = os.path.join(options.output_dir, name)
  io_utils.write_json(stem + ".json", record)
  if options.write_csv:
    io_utils.write_text(stem + ".csv", "\n".join(
        _csv_line(row) for row in [TABLE_COLUMNS] + table_rows(record)) + "\n")
  upscale = max(1, int(round(300 / max(rgb.shape[:2]))))
  drawn = visualize.draw_keypoints(rgb, [(points, visualize.PRED_COLOUR) for points in keypoints],
                                   upscale=upscale, radius=2, line_width=1)
  io_utils.save_png(drawn, stem + ".png")


# --- Images and videos --------------------------------------------------------------------

def predict_images(model, paths, names, options, table=None, on_done=None):
  """Predicts images in batches of files; yields (path, record or InputError) in order.

  A batch the model rejects is retried file by file, so the error names its file.
  """
  stems = {}
  for path in paths:
    stems[os.path.splitext(path)[0]] = stems.get(os.path.splitext(path)[0], 0) + 1
  for start in range(0, len(paths), options.batch_size):
    chunk = []
    for path, name in zip(paths[start:start + options.batch_size],
                          names[start:start + options.batch_size]):
      try:
        image_bytes, rgb = read_image(path)
        chunk.append((path, name, image_bytes, rgb) + find_faces(rgb, options.detector))
      except InputError as e:
        yield path, e
    try:
      keypoints = _predict_chunk(model, chunk, options.batch_size, options.detector)
    except tf.errors.InvalidArgumentError:
      keypoints = None
    for i, (path, name, image_bytes, rgb, regions, boxes, scores) in enumerate(chunk):
      try:
        points = (keypoints[i] if keypoints is not None
                  else _predict_chunk(model, [chunk[i]], options.batch_size,
                                      options.detector)[0])
      except tf.errors.InvalidArgumentError as e:
        yield path, InputError(f"{path}: the model could not read it ({e.message.strip()})")
        continue
      height, width = rgb.shape[:2]
      record = {"file": path, "width": width, "height": height, "saved_model": model.path,
                "detector": options.detector,
                "faces": face_records(regions, boxes, scores, points)}
      try:
        write_file_outputs(record, rgb, name, options, stems)
      except InputError as e:
        yield path, e
        continue
      if table:
        table.add(record)
      yield path, record


def _predict_chunk(model, chunk, batch_size, detector=None):
  """Per file of the chunk, its faces' keypoints, from one run over all their faces."""
  images, regions, counts = [], [], []
  for _, _, image_bytes, _, file_regions, _, _ in chunk:
    images.extend([image_bytes] * len(file_regions))
    regions.extend(file_regions)
    counts.append(len(file_regions))
  keypoints = predict_faces(model, images, np.reshape(regions, (-1, 4)), batch_size,
                            detected=detector is not None)
  return np.split(keypoints, np.cumsum(counts)[:-1])


def predict_video(model, path, name, options, table=None):
  """Keypoints of every frame: a record per frame into the table and <name>.csv, and
  <name>.annotated.mp4 with the points drawn, under output_dir. Returns frame records."""
  try:
    import cv2  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise InputError(f"{path}: videos need OpenCV: pip install "
                     "'opencv-python-headless<5' (or fkd_tf[detect])") from None
  check_regular_file(path)
  stem = os.path.join(options.output_dir, name) if options.output_dir else None
  records, writer = [], None
  with contextlib.ExitStack() as stack:
    capture = cv2.VideoCapture(path)
    stack.callback(capture.release)
    if not capture.isOpened():
      raise InputError(f"{path}: OpenCV cannot open it as a video")
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    # Renamed into place only if every frame went well (OpenCV picks the container by
    # the name's ending, hence the suffix).
    video_path = (stack.enter_context(io_utils.atomic_path(stem + ".annotated.mp4",
                                                           suffix=".mp4")) if stem else None)
    while True:
      frames = []
      while len(frames) < options.batch_size:
        ok, bgr = capture.read()
        if not ok:
          break
        frames.append(np.ascontiguousarray(bgr[..., ::-1]))
      if not frames:
        break
      found = [find_faces(rgb, options.detector) for rgb in frames]
      counts = [len(regions) for regions, _, _ in found]
      images = [rgb for rgb, count in zip(frames, counts) for _ in range(count)]
      regions = np.concatenate([r for r, _, _ in found]).reshape(-1, 4)
      keypoints = np.split(predict_faces(model, images, regions, options.batch_size,
                                         detected=options.detector is not None),
                           np.cumsum(counts)[:-1])
      for rgb, (frame_regions, boxes, scores), points in zip(frames, found, keypoints):
        record = {"file": path, "frame": len(records), "width": rgb.shape[1],
                  "height": rgb.shape[0], "saved_model": model.path,
                  "detector": options.detector,
                  "faces": face_records(frame_regions, boxes, scores, points)}
        records.append(record)
        if table:
          table.add(record)
        if video_path is None:
          continue
        if writer is None:
          writer = cv2.VideoWriter(video_path, cv2.VideoWriter_fourcc(*"mp4v"), fps,
                                   (rgb.shape[1], rgb.shape[0]))
          stack.callback(writer.release)  # before the rename: callbacks run in reverse
          if not writer.isOpened():
            raise InputError(f"{path}: OpenCV cannot write {stem}.annotated.mp4")
        drawn = visualize.draw_keypoints(rgb, [(p, visualize.PRED_COLOUR) for p in points],
                                         upscale=1, radius=2, line_width=1)
        writer.write(np.ascontiguousarray(np.asarray(drawn)[..., ::-1]))
    if not records:
      raise InputError(f"{path}: no frame could be read")
  if stem:
    io_utils.write_text(stem + ".csv", "\n".join(
        _csv_line(row) for row in [TABLE_COLUMNS] + [r for record in records
                                                     for r in table_rows(record)]) + "\n")
  return records


def predict_file(model, path, output_dir, detect_faces=False, write_csv=False,
                 detector=detect.DEFAULT_DETECTOR):
  """One image's record (its outputs under output_dir). Raises InputError naming it."""
  options = Options(output_dir=output_dir, detector=detector if detect_faces else None,
                    write_csv=write_csv)
  (_, result), = predict_images(model, [path], [os.path.basename(path)], options)
  if isinstance(result, InputError):
    raise result
  return result


# --- The command --------------------------------------------------------------------------
