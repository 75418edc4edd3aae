"""tools.make_docs_pictures' parts, in-process, on real pixels: the faces panel, the error
curves, the detect picture, the label placement they share (visualize.free_spot)."""

import os

import numpy as np
from PIL import Image, ImageDraw

from fkd_tf.inference import api, visualize
from tools import make_docs_pictures
import fakes


def _faces(count=8, size=(120, 100)):
  """`first_faces`-like dict: plain gray images, the template face inside each."""
  height, width = size
  points = fakes.face_template() * 60 + [20.0, 25.0]
  return {"images": [np.full((height, width, 1), 40 + 10 * i, np.uint8) for i in range(count)],
          "image_bytes": [b""] * count,
          "true_px": np.stack([points] * count).astype(np.float32),
          "file_name": [f"Person_{i}_01.jpg" for i in range(count)]}


def test_faces_panel_has_eight_tiles_each_with_truth_prediction_and_its_own_face():
  faces = _faces()
  pred = faces["true_px"] + 3.0 + np.arange(8)[:, None, None]  # tile i off by 3 + i px
  panel = make_docs_pictures.faces_panel(faces, pred, "model 3, whole-image predict")
  size = visualize.TILE_SIZE
  strip = panel.height - 2 * size
  assert panel.width == 4 * size and 12 <= strip <= 30
  sheet = np.asarray(panel)[strip:]
  backgrounds = []
  for i in range(8):
    tile = sheet[(i // 4) * size:(i // 4 + 1) * size, (i % 4) * size:(i % 4 + 1) * size]
    assert np.all(tile == visualize.TRUE_COLOUR, axis=-1).sum() > 20
    assert np.all(tile == visualize.PRED_COLOUR, axis=-1).sum() > 20
    backgrounds.append(int(tile[size // 2, 8, 0]))  # left of the face: the image's gray
  # Each tile shows its own image (grays 40, 50, ... scaled into the tile by bilinear).
  assert backgrounds == sorted(backgrounds) and len(set(backgrounds)) == 8
  title_zone = np.asarray(panel)[:strip, panel.width // 2:]
  assert (title_zone == 255).all(axis=-1).sum() > 30  # the title's white text


def test_first_faces_are_the_splits_first_unpadded_faces(tfrecord_dir):
  faces = make_docs_pictures.first_faces(tfrecord_dir, "val", count=4)
  assert len(faces["images"]) == len(faces["image_bytes"]) == len(faces["file_name"]) == 4
  assert faces["true_px"].shape == (4, 68, 2)
  for image, encoded in zip(faces["images"], faces["image_bytes"]):
    decoded = np.asarray(Image.open(__import__("io").BytesIO(encoded)))
    assert image.shape[:2] == decoded.shape[:2]  # the padding was cut off


def _write_report(path, nmes):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w") as f:
    f.write("file_name,nme_io,nme_box,mean_error_px\n")
    for i, nme in enumerate(nmes):
      f.write(f"f{i}.jpg,{nme},{nme / 2},1.0\n")


def _topmost_rows(picture, colour):
  """For each column holding `colour`, the first row (from the top) that does."""
  hit = np.all(np.asarray(picture) == colour, axis=-1)
  columns = np.flatnonzero(hit.any(axis=0))
  return columns, hit[:, columns].argmax(axis=0)


def test_report_curves_name_split_count_and_mean_and_the_curves_rise(tmp_path):
  base = tmp_path / "fkd_default"
  (base / "3").mkdir(parents=True)
  val, test = make_docs_pictures.default_reports(str(base / "3"))
  assert val == str(base / "eval_val" / "per_image_val.csv")
  assert make_docs_pictures.default_reports(str(base)) == [val, test]
  rng = np.random.default_rng(0)
  _write_report(val, np.abs(rng.normal(0.05, 0.02, 300)))
  _write_report(test, np.full(40, 0.03))  # every face at 3 %: a step there
  curves = make_docs_pictures.report_curves([val, test])
  labels = list(curves)
  assert labels[0].startswith("val, 300 faces: NME_io ") and labels[1] == (
      "test, 40 faces: NME_io 3.00 %")
  picture = make_docs_pictures.ced_picture(curves, "title")
  for colour in visualize.CURVE_PALETTE[:2]:
    columns, rows = _topmost_rows(picture, colour)
    legend_x = min(columns[np.diff(columns, prepend=columns[0]) > 30], default=10**6)
    rows = rows[columns < legend_x]  # the legend's swatch lies apart, to the right
    assert len(rows) > 300 and np.all(np.diff(rows) <= 1)  # rising (y falls), no gaps back
  # The step: left of 3 % the test curve lies on 0, right of it on 1.
  columns, rows = _topmost_rows(picture, visualize.CURVE_PALETTE[1])
  x_at = lambda nme: 64 + (720 - 64 - 24) * nme / 0.10
  low = rows[(columns > x_at(0.005)) & (columns < x_at(0.025))]
  high = rows[(columns > x_at(0.035)) & (columns < x_at(0.06))]
  assert low.min() > high.max() + 300
  # MediaPipe's diamond at 10 %, 91.3 % of faces.
  y_mediapipe = 480 - 56 - (480 - 56 - 40) * 0.913
  diamond = np.all(np.asarray(picture) == visualize.MARKER_COLOUR, axis=-1)
  assert diamond[int(y_mediapipe) - 2:int(y_mediapipe) + 3, int(x_at(0.1)) - 4:].any()


class _FakeModel:
  def __init__(self, faces):
    self.faces = faces

  def detect(self, image):
    assert os.path.isfile(image)
    return self.faces


def test_detect_picture_draws_every_face_of_detect_at_twice_the_size(tmp_path):
  photo = tmp_path / "group.png"
  Image.fromarray(np.full((90, 160, 3), 200, np.uint8)).save(photo)
  points = fakes.face_template() * 40
  faces = [api.Face((10.0, 10.0, 50.0, 50.0), 0.9, (points + 10).astype(np.float32)),
           api.Face((100.0, 30.0, 140.0, 70.0), 0.7, (points + [100, 30]).astype(np.float32))]
  picture, found = make_docs_pictures.detect_picture(_FakeModel(faces), str(photo))
  assert found is faces and picture.size == (320, 180)
  pixels = np.asarray(picture)
  for face in faces:
    x0, y0, _, y1 = (2 * v for v in face.box)
    assert tuple(pixels[int((y0 + y1) / 2), int(x0)]) == visualize.BOX_COLOUR
    x, y = (face.keypoints[30] * 2).astype(int)
    assert tuple(pixels[y, x]) == visualize.PRED_COLOUR


def test_free_spot_takes_the_first_candidate_that_covers_nothing():
  picture = Image.new("RGB", (100, 60), "white")
  draw = ImageDraw.Draw(picture)
  draw.ellipse([10, 10, 20, 20], fill=(0, 0, 255))
  draw.line([0, 40, 100, 40], fill=visualize.GRID_COLOUR)  # the grid counts as empty
  candidates = [(5, 5, 30, 15), (-10, 30, 10, 50), (30, 30, 60, 50), (70, 5, 95, 25)]
  box, count = visualize.free_spot(picture, candidates)
  assert box == (30, 30, 60, 50) and count == 0  # the first covers the dot, the second
  # lies outside the picture
  box, count = visualize.free_spot(picture, candidates[:1])
  assert box == candidates[0] and count > 0  # nothing free: the least covering
