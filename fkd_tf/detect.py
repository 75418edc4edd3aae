"""Face boxes in full photos, for predicting keypoints of every face in a group photo."""

import os

import numpy as np

# Training images are about 2.3 x 2.7 times their keypoint box, the face a little below
# the centre; a Haar box is about the keypoint box, so crops take this much around it.
CROP_SCALE = 2.4
CROP_DOWN_SHIFT = 0.1


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
