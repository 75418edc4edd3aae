import numpy as np

from fkd_tf.inference import visualize
import fakes


def test_points_land_where_the_keypoints_are():
  image = np.zeros((40, 50), np.uint8)
  points = np.array([[10.0, 5.0], [45.0, 30.0]])
  picture = np.asarray(visualize.draw_keypoints(image, [(points, (255, 0, 0))], upscale=3))
  assert picture.shape == (120, 150, 3)
  for x, y in points * 3:
    assert tuple(picture[int(y), int(x)]) == (255, 0, 0)
  assert tuple(picture[60, 75]) == (0, 0, 0)  # no point there


def test_float_images_and_single_channel_are_accepted():
  image = np.full((20, 20, 1), 0.5, np.float32)
  picture = np.asarray(visualize.draw_keypoints(image, [], upscale=1))
  assert picture.shape == (20, 20, 3) and picture[0, 0, 0] == 128


def test_tile_lays_out_a_grid_of_the_largest_cell():
  from PIL import Image  # pylint: disable=g-import-not-at-top
  pictures = [Image.new("RGB", (30, 20), (i * 40, 0, 0)) for i in range(5)]
  sheet = visualize.tile(pictures, columns=2)
  assert sheet.size == (60, 60)
  assert sheet.getpixel((35, 25)) == (120, 0, 0)  # the fourth picture, second row right
  assert sheet.getpixel((35, 45)) == (0, 0, 0)  # no sixth picture


def ring_face(centre=(60.0, 50.0), radius=30.0):
  """68 points on a circle: a stand-in face whose keypoint box is 2 * radius wide."""
  angles = np.linspace(0, 2 * np.pi, 68, endpoint=False)
  return np.stack([centre[0] + radius * np.cos(angles),
                   centre[1] + radius * np.sin(angles)], axis=1)


def test_crop_box_is_a_square_of_the_margin_times_the_joint_box():
  truth = ring_face()
  guess = truth + [10.0, 0.0]  # joint box: x 30..100, y 20..80
  x0, y0, x1, y1 = visualize.crop_box([truth, guess], margin=1.4)
  np.testing.assert_allclose([x0, y0, x1, y1], [16.0, 1.0, 114.0, 99.0], atol=1e-3)


def test_face_tile_moves_image_and_points_by_the_same_crop():
  image = np.zeros((100, 120), np.uint8)
  image[40:44, 60:64] = 255  # a white 4x4 block, centre (62, 42) in continuous pixels
  points = ring_face()
  size = 168
  picture = np.asarray(visualize.face_tile(image, [(points, (0, 0, 255))], size=size))
  assert picture.shape == (size, size, 3)
  x0, y0, x1, _ = visualize.crop_box([points])
  scale = size / (x1 - x0)
  red = picture[..., 0].astype(np.float64)  # the points are pure blue: red is the image
  ys, xs = np.mgrid[:size, :size]
  centroid = [(red * (xs + 0.5)).sum() / red.sum(), (red * (ys + 0.5)).sum() / red.sum()]
  np.testing.assert_allclose(centroid, [(62 - x0) * scale, (42 - y0) * scale], atol=0.25)
  for x, y in (points[[0, 17, 40]] - (x0, y0)) * scale:
    assert tuple(picture[int(y), int(x)]) == (0, 0, 255)


def test_outlines_join_the_points_of_each_part_and_not_across_parts():
  points = ring_face(radius=40.0)
  picture = np.asarray(visualize.face_tile(np.zeros((100, 120), np.uint8),
                                           [(points, (255, 0, 0))], size=256))
  x0, y0, x1, _ = visualize.crop_box([points])
  scale = 256 / (x1 - x0)
  to_tile = lambda p: (p - (x0, y0)) * scale
  on_jaw = to_tile((points[3] + points[4]) / 2)  # between two jaw points: a line
  across = to_tile((points[16] + points[17]) / 2)  # jaw end to brow start: no line
  assert picture[int(on_jaw[1]), int(on_jaw[0]), 0] > 100
  assert picture[int(across[1]), int(across[0]), 0] == 0


def test_face_panel_tiles_each_face_under_a_legend_and_labels_its_error():
  truth = np.stack([ring_face()] * 5)
  guess = truth.copy()
  guess[1] += 8.0  # 8 * sqrt(2) px off; points 36 and 45 are 60 * sin(9 pi / 68) px apart
  nme = 8 * np.sqrt(2) / (60 * np.sin(9 * np.pi / 68))
  assert abs(nme - 0.467) < 1e-3
  images = [np.full((100, 120), 90, np.uint8)] * 5
  panel = visualize.face_panel(images, truth, guess, columns=4, size=96)
  strip = panel.height - 2 * 96
  assert panel.width == 4 * 96 and 12 <= strip <= 20
  sheet = np.asarray(panel)[strip:]
  expected = [visualize.face_tile(images[0], [(truth[0], visualize.TRUE_COLOUR),
                                              (guess[0], visualize.PRED_COLOUR)],
                                  "NME_io 0.0%", size=96),
              visualize.face_tile(images[1], [(truth[1], visualize.TRUE_COLOUR),
                                              (guess[1], visualize.PRED_COLOUR)],
                                  "NME_io 46.7%", size=96)]
  np.testing.assert_array_equal(sheet[:96, :96], np.asarray(expected[0]))
  np.testing.assert_array_equal(sheet[:96, 96:192], np.asarray(expected[1]))
  assert sheet[96:, 96:].max() == 0  # five faces: the second row has one tile
  assert (np.asarray(panel)[:strip] == visualize.PRED_COLOUR).all(axis=-1).any()  # legend


def test_draw_faces_draws_detect_records_and_predict_json_alike():
  from fkd_tf.inference import api  # pylint: disable=g-import-not-at-top
  image = np.zeros((120, 160, 3), np.uint8)
  points = fakes.face_template() * 60 + 30
  face = api.Face((25.0, 20.0, 95.0, 100.0), 0.87, points.astype(np.float32))
  drawn = np.asarray(visualize.draw_faces(image, [face], upscale=2))
  assert drawn.shape == (240, 320, 3)
  assert tuple(drawn[2 * 60, 2 * 25]) == visualize.BOX_COLOUR  # the box's left edge
  x, y = (points[30] * 2).astype(int)
  assert tuple(drawn[y, x]) == visualize.PRED_COLOUR  # a keypoint
  as_json = {"box": list(face.box), "score": 0.87, "keypoints": points.tolist()}
  np.testing.assert_array_equal(np.asarray(visualize.draw_faces(image, [as_json], upscale=2)),
                                drawn)
  no_box = np.asarray(visualize.draw_faces(image, [face], upscale=2, boxes=False))
  assert tuple(no_box[2 * 60, 2 * 25]) != visualize.BOX_COLOUR
  # draw_keypoints takes a result as it comes: Faces or predict's [N, 68, 2].
  np.testing.assert_array_equal(
      np.asarray(visualize.draw_keypoints(image, [face], upscale=1)),
      np.asarray(visualize.draw_keypoints(image, points[np.newaxis], upscale=1)))
