"""Keypoints for files and videos at scale: listing, batching, tables, .pts, pictures.

The library under `fkd_tf.predict` (the command line): inputs are walked and checked
(regular files only, size-limited, formats the model reads), predicted in batches through
`fkd_tf.inference.api`, and written as per-file JSON / PNG (/ CSV), one CSV or JSONL table, iBUG
.pts files, or, for videos, a row per frame and an annotated video.
"""

import contextlib
import dataclasses
import json
import os

import numpy as np

from fkd_tf.inference import api, detect, visualize
from fkd_tf.utils import io_utils

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".m4v")
# The checks of the Python API (fkd_tf.inference.api), the same on every path: formats the
# served graph decodes, a byte cap for images (videos have none: their frames are bounded).
MODEL_FORMATS = api.MODEL_FORMATS
MAX_FILE_BYTES = api.MAX_FILE_BYTES
TABLE_SUFFIXES = (".csv", ".jsonl")
# Written into every output folder, so that a later run over a parent folder never
# predicts the drawings of an earlier one (whatever --output_dir was called).
OUTPUT_MARKER = ".fkd_tf_predictions"
# Video tracking (MediaPipe's way): each frame's faces are framed by the previous frame's
# keypoints; the detector runs again when a track is lost (its keypoints' box overlaps the
# box it was framed by less than TRACK_MIN_IOU, or leaves the frame) and every
# REDETECT_EVERY frames, to pick up faces that enter.
TRACK_MIN_IOU = 0.5
REDETECT_EVERY = 30
# A face whose keypoints' box moved less than this (in box sizes) keeps its frame box:
# keypoints jitter by about 1 % of the face, and re-framing on that jitter would walk the
# box (and the points) away from where the detector framed a still face.
TRACK_STILL = 0.03


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
  inputs: frozenset = frozenset()  # real paths of the inputs: never written over


# --- Inputs -------------------------------------------------------------------------------

def is_video(path):
  return path.lower().endswith(VIDEO_EXTENSIONS)


def check_regular_file(path):
  """Raises InputError unless `path` (links followed) is a regular file of allowed size
  (images only: a video's frames are bounded instead)."""
  try:
    api.check_regular_file(path, max_bytes=None if is_video(path) else MAX_FILE_BYTES)
  except ValueError as e:
    raise InputError(f"{e}; skipped") from None


def mark_output_folder(folder):
  """Marks a folder as predict's output, so that list_inputs never walks into it."""
  io_utils.write_text(os.path.join(folder, OUTPUT_MARKER),
                      "fkd_tf.predict writes here; later runs skip this folder as input\n")


def list_inputs(paths, skip_folder=None):
  """Files to predict under the given files and folders.

  Folders are walked recursively in sorted order, taking names with an image or video
  extension and never entering `skip_folder` nor any folder an earlier run wrote
  (OUTPUT_MARKER), whose drawings would otherwise be predicted. A file named directly is
  taken whatever its extension. The same file named twice is taken once.
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
      if OUTPUT_MARKER in names and os.path.realpath(folder) != os.path.realpath(path):
        subfolders[:] = []
        continue
      subfolders[:] = sorted(s for s in subfolders
                             if os.path.realpath(os.path.join(folder, s)) != skip
                             and not os.path.isfile(os.path.join(folder, s, OUTPUT_MARKER)))
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

  The Python API's checks and decoder (TensorFlow's, as the served graph; EXIF orientation
  applied), so every backend and the table see the same pixels.
  Raises:
    InputError naming the file: not a regular file, too large, not an image, or a format
    the model does not read.
  """
  check_regular_file(path)
  try:
    image_bytes = api.read_file(path)
    return image_bytes, api.decode_rgb(image_bytes, path)
  except ValueError as e:
    raise InputError(f"{e}; skipped") from None


# --- Faces and keypoints ------------------------------------------------------------------

def find_faces(rgb, detector):
  """(boxes [K, 4], scores [K] or None, keypoint boxes [K, 4]) of one image's faces.

  Without a detector the whole image is the one face (box = the image, no score) and goes
  in with an all-zero box, so that every stage of the model runs; a detection goes in as
  the keypoint box its detector's calibration implies.
  """
  height, width = rgb.shape[:2]
  if detector is None:
    return (np.array([[0, 0, width, height]], np.float32), None,
            np.zeros((1, 4), np.float32))
  boxes, scores = detect.detect_faces(rgb, detector)
  return boxes, scores, api.keypoint_boxes(boxes, detector)


def model_input(model, image_bytes, rgb):
  """What the model reads fastest: decoded pixels for LiteRT (no second decode), the file's
  bytes for the SavedModel (its graph decodes them as TF Serving would)."""
  return rgb if model.backend == "litert" else image_bytes


def predict_faces(model, images, boxes_kp, batch_size):
  """Keypoints [K, 68, 2] of K faces: images[i] (bytes or array) with keypoint box i
  (all zero: the whole image)."""
  keypoints = [model.predict(images[i:i + batch_size], boxes=boxes_kp[i:i + batch_size])
               for i in range(0, len(images), batch_size)]
  return np.concatenate(keypoints) if keypoints else np.zeros((0, 68, 2), np.float32)


def _rounded(values):
  return [round(float(v), 2) for v in values]


def face_records(boxes, scores, keypoints, tracked=False):
  """JSON-ready faces: the detector's box (or the whole image), score, keypoints (2 dp)."""
  faces = []
  for i, points in enumerate(keypoints):
    face = {"box": _rounded(boxes[i]),
            "score": None if scores is None or np.isnan(scores[i]) else round(float(scores[i]), 4),
            "keypoints": np.round(np.asarray(points, np.float64), 2).tolist()}
    if tracked:
      face["tracked"] = True
    faces.append(face)
  return faces


# Box columns as boxes are named everywhere (x0, y0, x1, y1); keypoints as x_0, y_0, ...
TABLE_COLUMNS = (["file", "frame", "face", "score", "x0", "y0", "x1", "y1"]
                 + [f"{axis}_{i}" for i in range(68) for axis in "xy"])


def table_rows(record):
  """CSV rows (lists of strings) of one record: a row per face, none for no face."""
  frame = "" if record.get("frame") is None else str(record["frame"])
  rows = []
  for i, face in enumerate(record["faces"]):
    score = "" if face.get("score") is None else f"{face['score']:.4f}"
    rows.append([record["file"], frame, str(i), score] + [f"{v:.2f}" for v in face["box"]]
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


def _check_not_an_input(path, options):
  if os.path.realpath(path) in options.inputs:
    raise InputError(f"{path}: is one of the inputs; not written over (choose another "
                     "--output_dir)")


def write_file_outputs(record, rgb, name, options, stems_taken=None):
  """Per-file outputs of an image: JSON, PNG (and CSV) under output_dir; .pts beside it.
  Never writes over an input file."""
  keypoints = [np.asarray(face["keypoints"]) for face in record["faces"]]
  if options.write_pts:
    for pts_path, points in zip(pts_paths(record["file"], len(keypoints), stems_taken or {}),
                                keypoints):
      if os.path.exists(pts_path) and not options.overwrite_pts:
        raise InputError(f"{pts_path}: already exists (annotations?); not overwritten "
                         "without --overwrite_pts")
      _check_not_an_input(pts_path, options)
      io_utils.write_text(pts_path, pts_text(points))
  if not options.output_dir:
    return
  stem = os.path.join(options.output_dir, name)
  for suffix in (".json", ".png") + ((".csv",) if options.write_csv else ()):
    _check_not_an_input(stem + suffix, options)
  io_utils.write_json(stem + ".json", record)
  if options.write_csv:
    io_utils.write_text(stem + ".csv", "\n".join(
        _csv_line(row) for row in [TABLE_COLUMNS] + table_rows(record)) + "\n")
  upscale = max(1, int(round(300 / max(rgb.shape[:2]))))
  io_utils.save_png(_drawing(rgb, record, upscale), stem + ".png")


def _drawing(rgb, record, upscale):
  """The picture of a record: keypoints, and the detector's boxes and scores."""
  detected = record.get("detector") is not None
  return visualize.draw_faces(rgb, record["faces"], upscale=upscale, boxes=detected)


# --- Images and videos --------------------------------------------------------------------

def predict_images(model, paths, names, options, table=None):
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
      keypoints = _predict_chunk(model, chunk, options.batch_size)
    except ValueError:
      keypoints = None
    for i, (path, name, _, rgb, boxes, scores, _) in enumerate(chunk):
      try:
        points = (keypoints[i] if keypoints is not None
                  else _predict_chunk(model, [chunk[i]], options.batch_size)[0])
      except ValueError as e:
        yield path, InputError(f"{path}: the model could not read it ({e})")
        continue
      height, width = rgb.shape[:2]
      record = {"file": path, "width": width, "height": height, "saved_model": model.path,
                "detector": options.detector,
                "faces": face_records(boxes, scores, points)}
      try:
        write_file_outputs(record, rgb, name, options, stems)
      except InputError as e:
        yield path, e
        continue
      if table:
        table.add(record)
      yield path, record


def _predict_chunk(model, chunk, batch_size):
  """Per file of the chunk, its faces' keypoints, from one run over all their faces."""
  images, boxes_kp, counts = [], [], []
  for _, _, image_bytes, rgb, _, _, file_boxes_kp in chunk:
    images.extend([model_input(model, image_bytes, rgb)] * len(file_boxes_kp))
    boxes_kp.extend(file_boxes_kp)
    counts.append(len(file_boxes_kp))
  keypoints = predict_faces(model, images, np.reshape(boxes_kp, (-1, 4)), batch_size)
  return np.split(keypoints, np.cumsum(counts)[:-1])


def _iou(a, b):
  """IoU of boxes [K, 4] with boxes [K, 4], row by row."""
  low, high = np.maximum(a[:, :2], b[:, :2]), np.minimum(a[:, 2:], b[:, 2:])
  overlap = np.prod(np.clip(high - low, 0, None), axis=1)
  area = lambda box: np.prod(box[:, 2:] - box[:, :2], axis=1)
  return overlap / np.maximum(area(a) + area(b) - overlap, 1e-9)


def points_box(keypoints):
  """[K, 68, 2] -> the keypoint boxes [K, 4] (x0, y0, x1, y1) around them."""
  keypoints = np.asarray(keypoints, np.float32).reshape(-1, 68, 2)
  return np.concatenate([keypoints.min(axis=1), keypoints.max(axis=1)], axis=1)


def _centre_size(boxes):
  boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
  return (boxes[:, :2] + boxes[:, 2:]) / 2, boxes[:, 2:] - boxes[:, :2]


class FaceTracker:
  """The faces of consecutive frames, as MediaPipe follows them: a frame's faces are framed
  by the keypoints of the frame before; the detector runs on the first frame, when a track
  is lost, and every `redetect_every` frames.

  Each track keeps how its detection's box sat on its keypoints' box (centre offset and
  size ratio, in keypoint-box sizes), and frames the next frame by the keypoints moved
  that way; a face that moved less than TRACK_STILL keeps its box, so a still face is
  framed as the detector framed it.

    tracker = FaceTracker(model, "blazeface")
    boxes, scores, keypoints, tracked = tracker.faces(rgb)
  """

  def __init__(self, model, detector, redetect_every=REDETECT_EVERY,
               min_iou=TRACK_MIN_IOU):
    self.model, self.detector = model, detector
    self.redetect_every, self.min_iou = redetect_every, min_iou
    self.detector_calls = 0
    self._frame = 0
    # scores [K], keypoints [K, 68, 2], frame boxes [K, 4], the keypoints' boxes they were
    # set from [K, 4], offsets [K, 2] and size ratios [K, 2] of frame box to keypoint box.
    self._tracks = None

  def _start_tracks(self, scores, keypoints, boxes_kp):
    reference = points_box(keypoints)
    centre, size = _centre_size(reference)
    box_centre, box_size = _centre_size(boxes_kp)
    size = np.maximum(size, 1e-6)
    self._tracks = (scores, keypoints, np.asarray(boxes_kp, np.float64), reference,
                    (box_centre - centre) / size, box_size / size)

  def _detect(self, rgb):
    self.detector_calls += 1
    boxes, scores, boxes_kp = find_faces(rgb, self.detector)
    keypoints = predict_faces(self.model, [rgb] * len(boxes_kp), boxes_kp, len(boxes_kp) or 1)
    self._start_tracks(scores, keypoints, boxes_kp)
    return boxes, scores, keypoints

  def _follow(self, rgb):
    """(boxes, scores, keypoints) framed by the last frame's keypoints; None when a track
    is lost (its keypoints' box overlaps its frame box under min_iou, or leaves the image)."""
    scores, previous, frame_boxes, reference, offsets, ratios = self._tracks
    now = points_box(previous)
    centre, size = _centre_size(now)
    moved = np.abs(now - reference).max(axis=1) > TRACK_STILL * size.max(axis=1)
    moved_boxes = np.concatenate([centre + offsets * size - ratios * size / 2,
                                  centre + offsets * size + ratios * size / 2], axis=1)
    boxes_kp = np.where(moved[:, np.newaxis], moved_boxes, frame_boxes)
    reference = np.where(moved[:, np.newaxis], now, reference)
    keypoints = predict_faces(self.model, [rgb] * len(boxes_kp), boxes_kp.astype(np.float32),
                              len(boxes_kp))
    found = points_box(keypoints)
    height, width = rgb.shape[:2]
    inside = ((found[:, 2] > 0) & (found[:, 3] > 0) & (found[:, 0] < width)
              & (found[:, 1] < height))
    if not np.all((_iou(found, boxes_kp) >= self.min_iou) & inside):
      return None
    self._tracks = (scores, keypoints, boxes_kp, reference, offsets, ratios)
    return (detect.detection_boxes_of_keypoint_boxes(boxes_kp, self.detector), scores,
            keypoints)

  def faces(self, rgb):
    """(boxes [K, 4], scores [K] or None, keypoints [K, 68, 2], tracked) of one frame.

    Boxes are the detector's (for followed faces, the detector box their frame implies);
    scores are the detector's last ones.
    """
    if self.detector is None:  # crop mode: the whole frame is the face
      boxes, scores, boxes_kp = find_faces(rgb, None)
      return boxes, scores, predict_faces(self.model, [rgb], boxes_kp, 1), False
    due = self._frame % self.redetect_every == 0
    self._frame += 1
    if not due and self._tracks is not None and len(self._tracks[1]):
      followed = self._follow(rgb)
      if followed is not None:
        return followed + (True,)
    boxes, scores, keypoints = self._detect(rgb)
    return boxes, scores, keypoints, False


def video_frame_count(path):
  """The frames a video says it holds (0 when OpenCV or the container does not say)."""
  try:
    import cv2  # pylint: disable=g-import-not-at-top
  except ImportError:
    return 0
  capture = cv2.VideoCapture(path)
  try:
    return max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0))
  finally:
    capture.release()


def predict_video(model, path, name, options, table=None, on_frame=None, tracker=None):
  """Keypoints of every frame: a record per frame into the table and <name>.csv, and
  <name>.annotated.mp4 with the points (and boxes) drawn, under output_dir. With a
  detector, faces are tracked from frame to frame (FaceTracker). Returns frame records;
  on_frame() is called after each frame (a progress bar)."""
  try:
    import cv2  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise InputError(f"{path}: videos need OpenCV: pip install "
                     "'opencv-python-headless<5' (or fkd_tf[detect])") from None
  check_regular_file(path)
  tracker = tracker or FaceTracker(model, options.detector)
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
    if stem:
      for suffix in (".annotated.mp4", ".csv"):
        _check_not_an_input(stem + suffix, options)
    video_path = (stack.enter_context(io_utils.atomic_path(stem + ".annotated.mp4",
                                                           suffix=".mp4")) if stem else None)
    while True:
      ok, bgr = capture.read()
      if not ok:
        break
      rgb = np.ascontiguousarray(bgr[..., ::-1])
      boxes, scores, keypoints, tracked = tracker.faces(rgb)
      record = {"file": path, "frame": len(records), "width": rgb.shape[1],
                "height": rgb.shape[0], "saved_model": model.path,
                "detector": options.detector,
                "faces": face_records(boxes, scores, keypoints, tracked)}
      records.append(record)
      if table:
        table.add(record)
      if on_frame:
        on_frame()
      if video_path is None:
        continue
      if writer is None:
        writer = cv2.VideoWriter(video_path, cv2.VideoWriter_fourcc(*"mp4v"), fps,
                                 (rgb.shape[1], rgb.shape[0]))
        stack.callback(writer.release)  # before the rename: callbacks run in reverse
        if not writer.isOpened():
          raise InputError(f"{path}: OpenCV cannot write {stem}.annotated.mp4")
      drawn = _drawing(rgb, record, upscale=1)
      writer.write(np.ascontiguousarray(np.asarray(drawn)[..., ::-1]))
    if not records:
      raise InputError(f"{path}: no frame could be read")
  if stem:
    io_utils.write_text(stem + ".csv", "\n".join(
        _csv_line(row) for row in [TABLE_COLUMNS] + [r for record in records
                                                     for r in table_rows(record)]) + "\n")
  return records


def predict_file(model, path, output_dir, detect_faces=True, write_csv=False,
                 detector=detect.DEFAULT_DETECTOR):
  """One image's record (its outputs under output_dir). Raises InputError naming it."""
  options = Options(output_dir=output_dir, detector=detector if detect_faces else None,
                    write_csv=write_csv)
  (_, result), = predict_images(model, [path], [os.path.basename(path)], options)
  if isinstance(result, InputError):
    raise result
  return result
