import numpy as np
import tensorflow as tf

from fkd_tf.core import geometry


def test_frame_matrix_rescales_shorter_side_and_centres_the_crop():
  regions = tf.constant([[0.0, 0.0, 200.0, 100.0], [10.0, 20.0, 60.0, 120.0]])
  matrix = geometry.frame_matrix(regions, tf.fill([2, 2], 0.5), 100.0).numpy()
  # Image 1: scale 1, 200x100 -> crop 90 centred: x offset 55, y offset 5.
  np.testing.assert_allclose(matrix[0], [[1, 0, -55], [0, 1, -5], [0, 0, 1]], atol=1e-5)
  # Region 2 is 50x100: scale 2; its centre (35, 70) lands on the frame centre.
  centre = geometry.transform_points(matrix[1:], tf.constant([[[35.0, 70.0]]])).numpy()
  np.testing.assert_allclose(centre, [[[45.0, 45.0]]], atol=1e-4)
  assert abs(matrix[1, 0, 0] - 2.0) < 1e-6


def test_crop_fraction_spans_the_slack():
  regions = tf.constant([[0.0, 0.0, 200.0, 100.0]] * 2)
  matrix = geometry.frame_matrix(regions, tf.constant([[0.0, 0.0], [1.0, 1.0]]), 100.0)
  np.testing.assert_allclose(matrix.numpy()[:, 0, 2], [0.0, -110.0], atol=1e-5)
  np.testing.assert_allclose(matrix.numpy()[:, 1, 2], [0.0, -10.0], atol=1e-5)


def test_similarity_keeps_the_centre_and_scales_distances():
  matrix = geometry.similarity_about_centre(tf.constant([1.5]), tf.constant([0.7]),
                                            tf.constant([0.0]), tf.constant([0.0]),
                                            tf.constant([True]))
  points = geometry.transform_points(matrix, tf.constant([[[45.0, 45.0], [55.0, 45.0]]]))
  points = points.numpy()[0]
  np.testing.assert_allclose(points[0], [45.0, 45.0], atol=1e-4)
  np.testing.assert_allclose(np.linalg.norm(points[1] - points[0]), 15.0, rtol=1e-5)


def test_projective_params_map_pixel_centres():
  # Scale 2 (net <- image): net pixel index 0 (centre 0.5) samples image point 0.25,
  # i.e. image index -0.25.
  matrix = tf.constant([[[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 1.0]]])
  params = geometry.projective_transform_params(matrix).numpy()[0]
  np.testing.assert_allclose(params, [0.5, 0, -0.25, 0, 0.5, -0.25, 0, 0], atol=1e-6)


def test_original_rounding_truncates_each_side_and_crops_whole_pixels():
  # 89x103 (the first reference test face): the original's Rescale(100) gives 100 x
  # int(100 * 103 / 89) = 100 x 115, so x scales by 100/89 and y by 115/103 (not 115.73/103),
  # and its centre crop starts at (100 - 90) // 2 = 5, (115 - 90) // 2 = 12.
  # 18x45: 100 * 45 / 18 = 250 exactly; float32 arithmetic gives 249.99998, whose int() is
  # 249, so the computation must be float64 as Python's was.
  regions = tf.constant([[0.0, 0.0, 89.0, 103.0], [0.0, 0.0, 18.0, 45.0]])
  matrix = geometry.frame_matrix(regions, tf.fill([2, 2], 0.5), 100.0,
                                 original_rounding=True).numpy()
  np.testing.assert_allclose(matrix[0], [[100 / 89, 0, -5], [0, 115 / 103, -12], [0, 0, 1]],
                             rtol=1e-6)
  np.testing.assert_allclose(matrix[1], [[100 / 18, 0, -5], [0, 250 / 45, -80], [0, 0, 1]],
                             rtol=1e-6)
  # Without it: one scale, 100/89, on both axes and a centre at 12.87 px.
  continuous = geometry.frame_matrix(regions[:1], tf.fill([1, 2], 0.5), 100.0).numpy()[0]
  np.testing.assert_allclose(continuous[1, 1:], [100 / 89, -(100 * 103 / 89 - 90) / 2],
                             rtol=1e-6)


def test_original_rounding_crops_like_randint_zero_to_slack():
  # A fraction drawn from [0, 1) gives np.random.randint(0, slack): 0 .. slack - 1, each
  # equally often; 1 - 2**-24 (the largest float32 below 1) must still give slack - 1.
  fractions = np.concatenate([(np.arange(1000) + 0.5) / 1000, [1.0 - 2.0**-24]])
  regions = tf.constant([[0.0, 0.0, 100.0, 140.0]] * len(fractions))  # slack 10 and 50
  matrix = geometry.frame_matrix(regions, np.stack([fractions] * 2, -1).astype(np.float32),
                                 100.0, original_rounding=True).numpy()
  left, top = -matrix[:, 0, 2], -matrix[:, 1, 2]
  assert np.array_equal(left, np.round(left)) and np.array_equal(top, np.round(top))
  assert np.bincount(left.astype(int)).tolist()[:10] == [100] * 9 + [101]
  assert left.max() == 9 and top.min() == 0 and top.max() == 49
  assert np.bincount(top.astype(int)).min() == 20
