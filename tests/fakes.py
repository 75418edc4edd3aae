"""Small synthetic data for tests: a symmetric 68-point face template, drawn images, and
folders in the official layout."""

import io
import os

import numpy as np
from PIL import Image, ImageDraw

from fkd_tf.core.keypoints import MIRROR_PERMUTATION, NUM_KEYPOINTS

SHARED_DATA = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "shared", "data",
                           "facial_keypoints")

# Left-side and centre points in a unit box; the right side is filled by mirroring, so the
# template is exactly symmetric under MIRROR_PERMUTATION.
_LEFT = {
    **{i: (0.5 - 0.45 * np.cos(np.pi * i / 16), 0.4 + 0.55 * np.sin(np.pi * i / 16))
       for i in range(9)},
    17: (0.12, 0.30), 18: (0.18, 0.26), 19: (0.26, 0.25), 20: (0.34, 0.26), 21: (0.41, 0.29),
    27: (0.5, 0.38), 28: (0.5, 0.45), 29: (0.5, 0.52), 30: (0.5, 0.60),
    31: (0.40, 0.65), 32: (0.45, 0.66), 33: (0.5, 0.67),
    36: (0.20, 0.42), 37: (0.26, 0.39), 38: (0.34, 0.39), 39: (0.40, 0.42), 40: (0.34, 0.45),
    41: (0.26, 0.45),
    48: (0.33, 0.78), 49: (0.40, 0.75), 50: (0.46, 0.73), 51: (0.5, 0.74), 57: (0.5, 0.86),
    58: (0.44, 0.85), 59: (0.38, 0.83), 60: (0.37, 0.79), 61: (0.45, 0.77), 62: (0.5, 0.77),
    66: (0.5, 0.81), 67: (0.45, 0.81),
}


def face_template():
  """[68, 2] keypoints in [0, 1]^2, symmetric about x = 0.5."""
  template = np.full((NUM_KEYPOINTS, 2), np.nan)
  for i, (x, y) in _LEFT.items():
    template[i] = (x, y)
    template[MIRROR_PERMUTATION[i]] = (1.0 - x, y)
  assert not np.isnan(template).any()
  return template


def draw_face(width, height, box, rng=None):
  """A gray face-like picture: ellipse, dots at the keypoints. Returns (uint8 [H, W], kp)."""
  rng = rng or np.random.default_rng(0)
  x0, y0, x1, y1 = box
  keypoints = face_template() * [x1 - x0, y1 - y0] + [x0, y0]
  picture = Image.fromarray(rng.integers(0, 40, (height, width), dtype=np.uint8))
  draw = ImageDraw.Draw(picture)
  draw.ellipse([x0, y0 - 0.1 * (y1 - y0), x1, y1], fill=110)
  for x, y in keypoints:
    draw.ellipse([x - 1.5, y - 1.5, x + 1.5, y + 1.5], fill=250)
  return np.asarray(picture), keypoints.astype(np.float32)


def encode(array, fmt="PNG", mode=None):
  """Encodes a uint8 array; mode converts first (e.g. 'RGBA', 'RGB', 'L')."""
  picture = Image.fromarray(array)
  if mode:
    picture = picture.convert(mode)
  buffer = io.BytesIO()
  picture.save(buffer, format=fmt)
  return buffer.getvalue()


def write_official_layout(folder, persons_train=6, persons_test=3, frames=3, seed=0):
  """Writes a small data set in the official layout (RGBA PNGs named .jpg, like the real
  one). Returns {split: [(file name, keypoints [68, 2])]}."""
  rng = np.random.default_rng(seed)
  written = {}
  for split, image_folder, csv_name, persons in (
      ("train", "training", "training_frames_keypoints.csv", persons_train),
      ("test", "test", "test_frames_keypoints.csv", persons_test)):
    os.makedirs(os.path.join(folder, image_folder), exist_ok=True)
    rows = []
    for p in range(persons):
      for f in range(frames):
        width, height = int(rng.integers(70, 160)), int(rng.integers(80, 170))
        side = rng.uniform(0.45, 0.75) * min(width, height)
        x0 = rng.uniform(0, width - side)
        y0 = rng.uniform(0.1 * side, height - side)
        image, keypoints = draw_face(width, height, (x0, y0, x0 + side, y0 + side), rng)
        name = f"{split.title()}_Person{p}_{f:02d}.jpg"
        with open(os.path.join(folder, image_folder, name), "wb") as out:
          out.write(encode(image, "PNG", "RGBA"))
        rows.append((name, keypoints))
    with open(os.path.join(folder, csv_name), "w") as out:
      out.write("," + ",".join(str(i) for i in range(2 * NUM_KEYPOINTS)) + "\n")
      for name, keypoints in rows:
        out.write(name + "," + ",".join(f"{v:.3f}" for v in keypoints.reshape(-1)) + "\n")
    written[split] = rows
  return written


def real_faces(real_dir, count, step=97):
  """`count` test images spread over the split: (RGB array, keypoints [68, 2])."""
  lines = open(os.path.join(real_dir, "test_frames_keypoints.csv")).read().splitlines()[1:]
  faces = []
  for line in lines[::step][:count]:
    name, *values = line.split(",")
    rgb = np.asarray(Image.open(os.path.join(real_dir, "test", name)).convert("RGB"))
    faces.append((rgb, np.array(values, float).reshape(68, 2)))
  return faces
