"""The robustness check: validation faces under what photos from other sources bring.

Each condition changes a val image (and its keypoints, where the geometry changes) in a
seeded, repeatable way; the model then predicts on the changed image as a user's call
would, and NME_io is computed in the changed image's pixels. The conditions were chosen
from what the cross-source photos differ in (docs/cross_source.md), not tuned to any set:

  blur        out of focus: Gaussian blur, sigma 1.5 % of the image width
  small       a small face in a photo: shrunk until the keypoint box is 40 px wide, then
              enlarged back (the detail is gone, the size is not)
  jpeg        heavy compression: JPEG quality 15
  rotation    a tilted head or camera: +-30 degrees about the keypoints' centre
  occlusion   a hand, a microphone, hair: a grey block of 40 % of the keypoint box' sides
              at a random spot inside the box
  low_light   gamma 2.2, contrast 0.6 and sensor noise (sigma 6 grey levels)
"""

import io

import numpy as np
from PIL import Image, ImageFilter

from fkd_tf.core import metrics

CONDITIONS = ("blur", "small", "jpeg", "rotation", "occlusion", "low_light")


def _keypoint_box(keypoints_px):
  return np.concatenate([keypoints_px.min(axis=0), keypoints_px.max(axis=0)])


def _blur(image, keypoints_px, rng):
  del rng
  radius = 0.015 * image.width
  return image.filter(ImageFilter.GaussianBlur(radius)), keypoints_px


def _small(image, keypoints_px, rng):
  del rng
  box = _keypoint_box(keypoints_px)
  scale = min(1.0, 40.0 / max(box[2] - box[0], 1.0))
  small = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                       Image.BOX)
  return small.resize(image.size, Image.BILINEAR), keypoints_px


def _jpeg(image, keypoints_px, rng):
  del rng
  buffer = io.BytesIO()
  image.convert("RGB").save(buffer, format="JPEG", quality=15)
  return Image.open(io.BytesIO(buffer.getvalue())).convert(image.mode), keypoints_px


def _rotation(image, keypoints_px, rng):
  angle = 30.0 if rng.uniform() < 0.5 else -30.0
  centre = keypoints_px.mean(axis=0)
  # PIL turns the picture counter-clockwise by `angle` on screen (y down): a point moves
  # by the matrix below about the same centre.
  rotated = image.rotate(angle, resample=Image.BILINEAR, center=tuple(centre))
  theta = np.deg2rad(angle)
  rotation = np.array([[np.cos(theta), np.sin(theta)], [-np.sin(theta), np.cos(theta)]])
  return rotated, (keypoints_px - centre) @ rotation.T + centre


def _occlusion(image, keypoints_px, rng):
  x0, y0, x1, y1 = _keypoint_box(keypoints_px)
  width, height = 0.4 * (x1 - x0), 0.4 * (y1 - y0)
  left = x0 + rng.uniform() * (x1 - x0 - width)
  top = y0 + rng.uniform() * (y1 - y0 - height)
  pixels = np.array(image)
  pixels[int(top):int(np.ceil(top + height)), int(left):int(np.ceil(left + width))] = 128
  return Image.fromarray(pixels), keypoints_px


def _low_light(image, keypoints_px, rng):
  pixels = np.asarray(image, np.float64) / 255.0
  pixels = pixels ** 2.2
  pixels = (pixels - pixels.mean()) * 0.6 + pixels.mean()
  pixels = pixels * 255.0 + rng.normal(0.0, 6.0, pixels.shape)
  return Image.fromarray(np.clip(np.round(pixels), 0, 255).astype(np.uint8)), keypoints_px


_CHANGES = {"blur": _blur, "small": _small, "jpeg": _jpeg, "rotation": _rotation,
            "occlusion": _occlusion, "low_light": _low_light}


def changed_face(image, keypoints_px, condition, seed):
  """One face under one condition.

  Args:
    image: PIL image (gray or RGB); keypoints_px: [68, 2] in its pixels.
    condition: one of CONDITIONS; seed: the face's own seed (its index).
  Returns:
    (uint8 array [H, W] or [H, W, 3], keypoints_px [68, 2] in the changed image).
  """
  if condition not in _CHANGES:
    raise ValueError(f"condition {condition!r}: choose from {', '.join(CONDITIONS)}")
  rng = np.random.default_rng([seed, CONDITIONS.index(condition)])
  changed, keypoints_px = _CHANGES[condition](image, np.asarray(keypoints_px, np.float64), rng)
  return np.asarray(changed), keypoints_px


def evaluate_conditions(faces, predict_fn, conditions=CONDITIONS, progress=None):
  """NME_io per condition.

  Args:
    faces: list of (PIL image, keypoints_px [68, 2]).
    predict_fn: list of uint8 arrays -> [N, 68, 2] keypoints in their pixels.
    conditions: which conditions.
    progress: optional callable(count) after each condition's batch.
  Returns:
    {condition: {"nme_io": %, "fr10": %, "auc10": fraction, "faces": N}}.
  """
  results = {}
  for condition in conditions:
    changed = [changed_face(image, keypoints, condition, index)
               for index, (image, keypoints) in enumerate(faces)]
    predicted = np.asarray(predict_fn([image for image, _ in changed]))
    truth = np.stack([keypoints for _, keypoints in changed]).astype(np.float32)
    nmes = metrics.nme(predicted, truth).numpy()
    results[condition] = {"nme_io": 100.0 * float(np.mean(nmes)),
                          "fr10": 100.0 * metrics.failure_rate(nmes),
                          "auc10": metrics.auc(nmes), "faces": len(faces)}
    if progress:
      progress(len(faces))
  return results
