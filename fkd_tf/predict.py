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

from fkd_tf import api, common_flags, detect, io_utils, visualize

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


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


def predict_file(model, path, output_dir, detect_faces=False, write_csv=False):
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
    regions = detect.detect_face_boxes(gray)
    keypoints = (model.predict([image_bytes] * len(regions), boxes=regions) if len(regions)
                 else np.zeros((0, 68, 2)))
  else:
    regions = np.array([[0, 0, gray.shape[1], gray.shape[0]]], np.float32)
    keypoints = model.predict(image_bytes)
  stem = os.path.join(output_dir, os.path.splitext(os.path.basename(path))[0])
  record = {"file": path, "width": gray.shape[1], "height": gray.shape[0],
            "saved_model": model.path,
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
  common_flags.define_saved_model()
  flags.DEFINE_string("output_dir", "predictions", "Where JSON, CSV and PNG files go.")
  flags.DEFINE_bool("csv", False, "Also write keypoints as CSV.")
  flags.DEFINE_bool("detect_faces", False, "Find faces in full photos first (OpenCV Haar).")


def main(argv):
  paths = list_images(argv[1:])
  if not paths:
    raise app.UsageError("give image files or folders to predict")
  model = api.load(FLAGS.saved_model)
  failures = 0
  for path in paths:
    try:
      record = predict_file(model, path, FLAGS.output_dir, FLAGS.detect_faces, FLAGS.csv)
    except (OSError, ValueError, tf.errors.InvalidArgumentError) as e:
      failures += 1
      print(f"error: {e}", file=sys.stderr)
      continue
    faces = len(record["faces"])
    print(f"{path}: " + (f"{faces} face(s)" if faces else "no face found"))
  print(f"wrote {FLAGS.output_dir}/")
  if failures:
    sys.exit(f"{failures} of {len(paths)} files could not be read")


def run():
  """The `fkd-predict` console command."""
  define_flags()
  app.run(main)


if __name__ == "__main__":
  run()
