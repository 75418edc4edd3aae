import numpy as np

from fkd_tf import visualize


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
