r"""Keypoints for your own images: `python -m fkd_tf.predict [--saved_model=DIR] PATHS...`

PATHS are image files or folders. For each image it writes <name>.json (keypoints in the
image's pixels; CSV too with --csv) and <name>.png with the points drawn. With
--detect_faces it finds every face in a full photo (OpenCV's Haar cascade, the `detect`
extra), crops each with the margin the training crops have, and maps the keypoints back
to the photo. An unreadable file is reported by name and the rest continue.
"""

import io
import os
import sys

from absl import app, flags
import numpy as np
from PIL import Image
import tensorflow as tf

from fkd_tf import export, io_utils, visualize

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
# The model that ships with the repository (see BUILD.md, "The shipped model").
DEFAULT_SAVED_MODEL = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))), "models", "fkd_default")
# Training images are about 2.3 x 2.7 times their keypoint box, the face a little below
# the centre; a Haar box is about the keypoint box, so crops take this much around it.
CROP_SCALE = 2.4
CROP_DOWN_SHIFT = 0.1


def list_images(paths):
  """Files under the given files/folders, images by extension, sorted per folder."""
  found = []
  for path in paths:
    if os.path.isdir(path):
      found.extend(sorted(os.path.join(path, n) for n in os.listdir(path)
                          if n.lower().endswith(IMAGE_EXTENSIONS)))
    else:
      found.append(path)
  return found


def detect_face_boxes(gray, min_size=40):
  """Haar cascade faces of a uint8 [H, W] image: [K, 4] (x0, y0, x1, y1) crop regions."""
  try:
    import cv2  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise RuntimeError("--detect_faces needs OpenCV: pip install -e '.[detect]'") from e
  cascade = cv2.CascadeClassifier(os.path.join(cv2.data.haarcascades,
                                               "haarcascade_frontalface_default.xml"))
  faces = cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5,
                                   minSize=(min_size, min_size))
  regions = []
  for x, y, w, h in np.asarray(faces).reshape(-1, 4):
    side = CROP_SCALE * max(w, h)
    cx, cy = x + w / 2.0, y + h / 2.0 + CROP_DOWN_SHIFT * h
    regions.append([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2])
  return np.array(regions, np.float32).reshape(-1, 4)


class Predictor:
  """Wraps an exported SavedModel's signatures."""

  def __init__(self, saved_model):
    self.path = export.resolve_saved_model(saved_model)
    model = tf.saved_model.load(self.path)
    self.serve = model.signatures["serving_default"]
    self.with_boxes = model.signatures["with_boxes"]

  def whole(self, image_bytes):
    return self.serve(image_bytes=tf.constant([image_bytes]))["keypoints"].numpy()

  def boxes(self, image_bytes, regions):
    batch = tf.constant([image_bytes] * len(regions))
    return self.with_boxes(image_bytes=batch, boxes=tf.constant(regions))["keypoints"].numpy()


def predict_file(predictor, path, output_dir, detect_faces=False, write_csv=False):
  """Predicts one file; returns its JSON record. Raises ValueError naming a bad file."""
  with open(path, "rb") as f:
    image_bytes = f.read()
  try:
    picture = Image.open(io.BytesIO(image_bytes))
    picture.load()
  except Exception as e:  # PIL raises many types for bad files
    raise ValueError(f"{path}: not a readable image ({e})") from None
  gray = np.asarray(picture.convert("L"))
  if detect_faces:
    regions = detect_face_boxes(gray)
    keypoints = predictor.boxes(image_bytes, regions) if len(regions) else np.zeros((0, 68, 2))
  else:
    regions = np.array([[0, 0, gray.shape[1], gray.shape[0]]], np.float32)
    keypoints = predictor.whole(image_bytes)
  stem = os.path.join(output_dir, os.path.splitext(os.path.basename(path))[0])
  record = {"file": path, "width": gray.shape[1], "height": gray.shape[0],
            "saved_model": predictor.path,
            "faces": [{"region": [round(float(v), 2) for v in region],
                       "keypoints": np.round(points, 2).tolist()}
                      for region, points in zip(regions, keypoints)]}
  io_utils.write_json(stem + ".json", record)
  if write_csv:
    rows = ["face," + ",".join(f"x{i},y{i}" for i in range(68))]
    rows += [f"{i}," + ",".join(f"{v:.2f}" for v in points.reshape(-1))
             for i, points in enumerate(keypoints)]
    io_utils.write_text(stem + ".csv", "\n".join(rows) + "\n")
  upscale = max(1, int(round(300 / max(gray.shape))))
  drawn = visualize.draw_keypoints(np.asarray(picture.convert("RGB")),
                                   [(points, visualize.PRED_COLOUR) for points in keypoints],
                                   upscale=upscale)
  io_utils.save_png(drawn, stem + ".png")
  return record


FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_string("saved_model", DEFAULT_SAVED_MODEL, "SavedModel version folder, or a "
                      "base holding numeric versions (the newest is used).")
  flags.DEFINE_string("output_dir", "predictions", "Where JSON, CSV and PNG files go.")
  flags.DEFINE_bool("csv", False, "Also write keypoints as CSV.")
  flags.DEFINE_bool("detect_faces", False, "Find faces in full photos first (OpenCV Haar).")


def main(argv):
  paths = list_images(argv[1:])
  if not paths:
    raise app.UsageError("give image files or folders to predict")
  predictor = Predictor(FLAGS.saved_model)
  failures = 0
  for path in paths:
    try:
      record = predict_file(predictor, path, FLAGS.output_dir, FLAGS.detect_faces, FLAGS.csv)
    except (OSError, ValueError, tf.errors.InvalidArgumentError) as e:
      failures += 1
      print(f"error: {e}", file=sys.stderr)
      continue
    faces = len(record["faces"])
    print(f"{path}: " + (f"{faces} face(s)" if faces else "no face found"))
  print(f"wrote {FLAGS.output_dir}/")
  if failures:
    sys.exit(f"{failures} of {len(paths)} files could not be read")


if __name__ == "__main__":
  define_flags()
  app.run(main)
