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
