"""The canvas check: faces where they are used, somewhere in a larger photo, through `detect`.

Each face of a split is pasted at a random (seeded) spot of a plain canvas 1x, 2x, ... its
image's size and handed to a detect function (`KeypointModel.detect`); faceless images
(plain, noise, gradient) check that nothing is answered where there is no face.

  result = canvas.run(model.detect, canvas.split_faces(tfrecord_dir, "val"), (1, 2, 3, 4))
  print(canvas.format_table(result))

Per canvas size: NME_io over the faces found, FR@10 counting a face not found as a failure,
and the share found. A face counts as found when a returned face's box holds the centre of
the face's true keypoint box; of several, the one whose keypoints lie nearest is scored.
"""

import numpy as np

from fkd_tf.core import metrics
from fkd_tf.inference import api
from fkd_tf.utils import io_utils
from fkd_tf.data import pipeline

DEFAULT_SCALES = (1, 2, 3, 4)
BACKGROUND_KINDS = ("plain", "noise", "gradient")
# A face answered with at least this score on a faceless image counts as a false face.
FACE_SCORE = 0.5
BACKGROUND_SIDES = (128, 1024)


def split_faces(tfrecord_dir, split, batch_size=64):
  """[(rgb uint8 [H, W, 3], keypoints_px [68, 2], file name)] of a converted split."""
  dataset = pipeline.make_dataset(tfrecord_dir, split, batch_size, training=False,
                                  with_names=True, with_bytes=True, cache=False)
  faces = []
  for batch in dataset:
    for image_bytes, keypoints, name in zip(batch["image_bytes"].numpy(),
                                            batch["keypoints_px"].numpy(),
                                            batch["file_name"].numpy()):
      faces.append((api.decode_rgb(image_bytes, name.decode()), keypoints, name.decode()))
  return faces


def place_on_canvas(rgb, keypoints_px, scale, rng):
  """The image pasted at a random spot of a plain canvas `scale` times its size.

  Returns:
    (canvas uint8 [round(H * scale), round(W * scale), 3], keypoints_px moved with it).
  """
  height, width = rgb.shape[:2]
  canvas_h, canvas_w = round(height * scale), round(width * scale)
  colour = rng.integers(0, 256, size=3).astype(np.uint8)
  canvas = np.empty((canvas_h, canvas_w, 3), np.uint8)
  canvas[:] = colour
  y = int(rng.integers(0, canvas_h - height + 1))
  x = int(rng.integers(0, canvas_w - width + 1))
  canvas[y:y + height, x:x + width] = rgb[..., :3]
  return canvas, np.asarray(keypoints_px, np.float32) + np.float32([x, y])


def faceless_images(count, seed=0):
  """`count` images with no face: plain colours, noise and gradients in turn, of random
  sizes between BACKGROUND_SIDES (seeded)."""
  rng = np.random.default_rng(seed)
  for i in range(count):
    height, width = (int(v) for v in rng.integers(*BACKGROUND_SIDES, size=2))
    kind = BACKGROUND_KINDS[i % len(BACKGROUND_KINDS)]
    if kind == "plain":
      image = np.broadcast_to(rng.integers(0, 256, size=3).astype(np.uint8),
                              (height, width, 3)).copy()
    elif kind == "noise":
      image = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    else:
      low, high = rng.integers(0, 256, size=(2, 3)).astype(np.float32)
      ramp = np.linspace(0.0, 1.0, width, dtype=np.float32)[np.newaxis, :, np.newaxis]
      image = np.broadcast_to(low + (high - low) * ramp, (height, width, 3)).astype(np.uint8)
    yield kind, image


def _fields(face):
  """(box, score, keypoints) of an api.Face or a dict with those keys."""
  if isinstance(face, dict):
    return face["box"], face["score"], face["keypoints"]
  return face.box, face.score, face.keypoints


def match(faces, keypoints_px):
  """The returned face that is this true face, or None: its box holds the true keypoint
  box's centre; the nearest keypoints among several."""
  centre = (keypoints_px.min(axis=0) + keypoints_px.max(axis=0)) / 2
  best, best_distance = None, np.inf
  for face in faces:
    box, _, points = _fields(face)
    if not (box[0] <= centre[0] <= box[2] and box[1] <= centre[1] <= box[3]):
      continue
    distance = float(np.linalg.norm(np.asarray(points, np.float64) - keypoints_px, axis=1)
                     .mean())
    if distance < best_distance:
      best, best_distance = face, distance
  return best


def summarise_scale(nmes, found):
  """The figures of one canvas size from per-face NME_io (NaN where not found)."""
  nmes = np.asarray(nmes, np.float64)
  found = np.asarray(found, bool)
  failed = ~found | (np.nan_to_num(nmes, nan=np.inf) > metrics.FAILURE_THRESHOLD)
  return {"faces": int(len(found)), "found": int(found.sum()),
          "found_rate": float(found.mean()) if len(found) else 0.0,
          "nme_io": float(nmes[found].mean()) if found.any() else float("nan"),
          "failure_rate_10": float(failed.mean()) if len(found) else 0.0}


def run(detect_fn, faces, scales=DEFAULT_SCALES, backgrounds=100, seed=0):
  """The canvas check of `detect_fn` (image -> faces with box, score, keypoints).

  Args:
    detect_fn: e.g. `fkd_tf.load().detect`.
    faces: [(rgb, keypoints_px [68, 2], name)], e.g. `split_faces`.
    scales: canvas sizes in image sizes (1: the image itself).
    backgrounds: how many faceless images to try.
    seed: spots, colours and backgrounds.
  Returns:
    {"scales": {scale: summarise_scale's dict}, "backgrounds": {"images", "answered",
     "answered_by_kind"}, "seed": seed, "face_score": FACE_SCORE}.
  """
  rng = np.random.default_rng(seed)
  progress = io_utils.progress_bar(len(faces) * len(scales) + backgrounds, "image")
  by_scale = {}
  for scale in scales:
    nmes, found = [], []
    for rgb, keypoints_px, _ in faces:
      canvas, truth = place_on_canvas(rgb, keypoints_px, scale, rng)
      face = match(detect_fn(canvas), truth)
      found.append(face is not None)
      nmes.append(np.nan if face is None else float(metrics.nme(
          np.asarray(_fields(face)[2], np.float32)[np.newaxis], truth[np.newaxis]).numpy()[0]))
      progress.add(1)
    by_scale[str(scale)] = summarise_scale(nmes, found)
  answered = dict.fromkeys(BACKGROUND_KINDS, 0)
  for kind, image in faceless_images(backgrounds, seed):
    answered[kind] += any(_fields(face)[1] >= FACE_SCORE for face in detect_fn(image))
    progress.add(1)
  return {"scales": by_scale, "seed": seed, "face_score": FACE_SCORE,
          "backgrounds": {"images": backgrounds, "answered": sum(answered.values()),
                          "answered_by_kind": answered}}


def format_table(result):
  """The check as a Markdown table (and a line for the faceless images)."""
  lines = ["| canvas | NME_io (faces found) | FR@10 (missed = failed) | found |",
           "|---|---|---|---|"]
  for scale, row in result["scales"].items():
    lines.append(f"| {scale}x | {100 * row['nme_io']:.2f} % | "
                 f"{100 * row['failure_rate_10']:.1f} % | "
                 f"{100 * row['found_rate']:.1f} % ({row['found']}/{row['faces']}) |")
  backgrounds = result["backgrounds"]
  lines.append(f"\nfaceless images answered with a face (score >= {result['face_score']}): "
               f"{backgrounds['answered']} of {backgrounds['images']} "
               f"({', '.join(f'{k} {v}' for k, v in backgrounds['answered_by_kind'].items())})")
  return "\n".join(lines)
