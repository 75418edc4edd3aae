import dataclasses

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.framework import kernels

from fkd_tf.core import augment, framing, geometry
from fkd_tf.core.keypoints import LEFT_EYE_OUTER, MIRROR_PERMUTATION, NET_SIZE, RIGHT_EYE_OUTER
import fakes

# A set closed under the mirror permutation, far enough apart to find each dot alone.
DOT_INDICES = [0, 16, 8, 19, 24, 30, 36, 45, 48, 54, 57]


def dot_image(height=180, width=170, sigma=2.0):
  """Float image with a Gaussian dot at each of DOT_INDICES; other points far outside."""
  keypoints = np.full((68, 2), -500.0, np.float32)
  template = fakes.face_template()
  keypoints[DOT_INDICES] = template[DOT_INDICES] * [130, 140] + [20, 25]
  ys, xs = np.mgrid[0:height, 0:width] + 0.5  # pixel centres, continuous convention
  image = np.zeros((height, width), np.float32)
  for x, y in keypoints[DOT_INDICES]:
    image += np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma ** 2))
  return image[np.newaxis, :, :, np.newaxis], keypoints[np.newaxis]


def centroid_errors(image_net, keypoints_net, radius=3.5):
  """Distance between each expected dot and the intensity centroid around it."""
  ys, xs = np.mgrid[0:NET_SIZE, 0:NET_SIZE] + 0.5
  errors = []
  for x, y in keypoints_net[DOT_INDICES]:
    if not (4 < x < NET_SIZE - 4 and 4 < y < NET_SIZE - 4):
      continue  # cut off by the crop: nothing to measure
    window = image_net * ((np.abs(xs - x) <= radius) & (np.abs(ys - y) <= radius))
    cx, cy = (window * xs).sum() / window.sum(), (window * ys).sum() / window.sum()
    errors.append(np.hypot(cx - x, cy - y))
  assert len(errors) >= 7, "too few dots stayed in the frame to test anything"
  return np.array(errors)


GEOMETRIC = {
    "crop_only": augment.AugmentConfig(),
    "crop_whole_pixels": augment.AugmentConfig(original_rounding=True),
    "rotation": augment.AugmentConfig(random_crop=False, max_rotation_deg=25),
    "scale": augment.AugmentConfig(random_crop=False, min_scale=0.85, max_scale=1.2),
    "shift": augment.AugmentConfig(random_crop=False, max_shift=6),
    "flip": augment.AugmentConfig(random_crop=False, flip_prob=1.0),
    "combined": augment.AugmentConfig(max_rotation_deg=20, min_scale=0.85, max_scale=1.15,
                                      max_shift=4, flip_prob=0.5),
}


@pytest.mark.parametrize("name", sorted(GEOMETRIC))
def test_dots_land_where_keypoints_say(name):
  image, keypoints = dot_image()
  regions = framing.whole_image_regions([[image.shape[1], image.shape[2]]])
  for seed in range(4):
    images_net, keypoints_net, _ = augment.augment_geometry(
        tf.constant(image), regions, tf.constant(keypoints), tf.constant([seed, 7]),
        GEOMETRIC[name])
    errors = centroid_errors(images_net.numpy()[0, :, :, 0], keypoints_net.numpy()[0])
    assert errors.max() < 0.5, (name, seed, errors)


def test_eval_frame_dots_and_uint8_canvas_with_padding():
  image, keypoints = dot_image()
  canvas = np.zeros((1, 300, 260, 1), np.uint8)  # padded larger than the image
  canvas[:, :image.shape[1], :image.shape[2]] = np.round(np.clip(image, 0, 1) * 255)
  regions = framing.whole_image_regions([[image.shape[1], image.shape[2]]])
  images_net, net_from_image = framing.frame_batch(tf.constant(canvas), regions, 100.0)
  keypoints_net = geometry.transform_points(net_from_image, tf.constant(keypoints))
  assert images_net.shape == (1, NET_SIZE, NET_SIZE, 1)
  assert centroid_errors(images_net.numpy()[0, :, :, 0], keypoints_net.numpy()[0]).max() < 0.5
  # Padding changes nothing: the unpadded image gives the same pixels.
  unpadded, _ = framing.frame_batch(tf.constant(canvas[:, :180, :170]), regions, 100.0)
  np.testing.assert_allclose(unpadded.numpy(), images_net.numpy(), atol=1e-6)


def test_flip_twice_is_identity():
  keypoints = tf.constant(np.random.default_rng(0).uniform(0, 90, (3, 68, 2)), tf.float32)
  flip = tf.constant([True, False, True])
  mirror = geometry.similarity_about_centre(tf.ones(3), tf.zeros(3), tf.zeros(3), tf.zeros(3),
                                            flip)
  once = augment.mirror_keypoints(geometry.transform_points(mirror, keypoints), flip)
  twice = augment.mirror_keypoints(geometry.transform_points(mirror, once), flip)
  np.testing.assert_allclose(twice.numpy(), keypoints.numpy(), atol=1e-4)
  np.testing.assert_array_equal(MIRROR_PERMUTATION[MIRROR_PERMUTATION], np.arange(68))
  assert not np.allclose(once.numpy()[0], keypoints.numpy()[0])


def test_flipping_a_symmetric_face_swaps_eye_corners():
  side = 150.0
  keypoints = (fakes.face_template() * side + 15.0).astype(np.float32)[np.newaxis]
  image = np.zeros((1, 180, 180, 1), np.float32)
  regions = framing.whole_image_regions([[180, 180]])
  config = augment.AugmentConfig(random_crop=False, flip_prob=1.0)
  _, flipped, _ = augment.augment_geometry(image, regions, keypoints, tf.constant([1, 2]),
                                           config)
  _, plain, _ = augment.augment_geometry(image, regions, keypoints, tf.constant([1, 2]),
                                         augment.AugmentConfig(random_crop=False))
  flipped, plain = flipped.numpy()[0], plain.numpy()[0]
  # A symmetric face looks the same mirrored: every label keeps its place, and the
  # left eye's outer corner is where the right one was, mirrored.
  np.testing.assert_allclose(flipped, plain, atol=1e-3)
  assert plain[LEFT_EYE_OUTER, 0] < plain[RIGHT_EYE_OUTER, 0]
  np.testing.assert_allclose(flipped[LEFT_EYE_OUTER, 0], NET_SIZE - plain[RIGHT_EYE_OUTER, 0],
                             atol=1e-3)


def _batch(seed=0, count=4):
  rng = np.random.default_rng(seed)
  canvas = np.zeros((count, 160, 150, 1), np.uint8)
  sizes, keypoints = [], []
  for i in range(count):
    h, w = int(rng.integers(100, 160)), int(rng.integers(100, 150))
    face, kp = fakes.draw_face(w, h, (10, 15, w - 10, h - 5), rng)
    canvas[i, :h, :w, 0] = face
    sizes.append((h, w))
    keypoints.append(kp)
  return tf.constant(canvas), tf.constant(sizes, tf.int32), tf.constant(np.stack(keypoints))


def test_zero_magnitudes_equal_plain_evaluation_resize():
  canvas, sizes, keypoints = _batch()
  images, keypoints_net, net_from_image = augment.augment_batch(
      canvas, sizes, keypoints, tf.constant([3, 4]), augment.AugmentConfig(random_crop=False))
  plain, plain_matrix = framing.frame_batch(canvas, framing.whole_image_regions(sizes), 100.0)
  np.testing.assert_array_equal(images.numpy(), plain.numpy())
  np.testing.assert_array_equal(net_from_image.numpy(), plain_matrix.numpy())
  np.testing.assert_allclose(keypoints_net.numpy(),
                             geometry.transform_points(plain_matrix, keypoints).numpy())


FULL = augment.AugmentConfig(max_rotation_deg=20, min_scale=0.9, max_scale=1.1, max_shift=3,
                             flip_prob=0.5, brightness=0.2, contrast=0.3, gamma=0.3,
                             blur_prob=0.5, erase_prob=0.5)


def test_same_seed_same_output_and_different_seed_differs():
  canvas, sizes, keypoints = _batch()
  first = augment.augment_batch(canvas, sizes, keypoints, tf.constant([5, 6]), FULL)
  again = augment.augment_batch(canvas, sizes, keypoints, tf.constant([5, 6]), FULL)
  other = augment.augment_batch(canvas, sizes, keypoints, tf.constant([5, 7]), FULL)
  for a, b in zip(first, again):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  assert not np.allclose(first[0].numpy(), other[0].numpy())


def test_photometric_stays_in_range_and_changes_pixels():
  canvas, sizes, keypoints = _batch()
  images, _ = framing.frame_batch(canvas, framing.whole_image_regions(sizes), 100.0)
  changed = augment.photometric(images, tf.constant([1, 1]), FULL).numpy()
  assert changed.min() >= 0.0 and changed.max() <= 1.0
  assert np.abs(changed - images.numpy()).mean() > 0.01
  unchanged = augment.photometric(images, tf.constant([1, 1]), augment.AugmentConfig())
  np.testing.assert_array_equal(unchanged.numpy(), images.numpy())


def test_brightness_alone_shifts_the_mean_within_range():
  images = tf.fill([16, NET_SIZE, NET_SIZE, 1], 0.5)
  config = augment.AugmentConfig(brightness=0.2)
  shifted = augment.photometric(images, tf.constant([2, 3]), config).numpy()
  deltas = shifted.reshape(16, -1).mean(axis=1) - 0.5
  assert np.all(np.abs(deltas) <= 0.2 + 1e-6) and deltas.std() > 0.02
  assert np.allclose(shifted.reshape(16, -1).std(axis=1), 0.0, atol=1e-6)  # uniform per image


def test_erasing_fills_one_rectangle():
  images = tf.zeros([8, NET_SIZE, NET_SIZE, 1])
  config = augment.AugmentConfig(erase_prob=1.0, erase_max_fraction=0.4)
  erased = augment.photometric(images, tf.constant([9, 9]), config).numpy()[..., 0]
  for image in erased:
    rows, cols = np.nonzero(image)
    assert len(rows) > 0
    box = image[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    assert np.all(box == box[0, 0]) and box.shape[0] <= 0.4 * NET_SIZE + 1


def test_erased_grey_levels_are_not_tied_to_the_erase_draw():
  # The erase decision and the grey level once came from one seed: with erase_prob 0.2
  # every erased patch was darker than 0.2. Levels must span [0, 1] whatever the prob.
  config = augment.AugmentConfig(erase_prob=0.2, erase_max_fraction=0.5)
  images = tf.fill([400, 90, 90, 1], 0.5)
  erased = augment.photometric(images, tf.constant([3, 4], tf.int64), config).numpy()
  changed = np.abs(erased - 0.5) > 1e-6
  levels = np.array([image[mask].mean() for image, mask in zip(erased, changed) if mask.any()])
  assert 50 < len(levels) < 110  # about a fifth of 400 images erased
  assert levels.max() > 0.6 and levels.min() < 0.2 and 0.35 < levels.mean() < 0.65


def test_bad_settings_are_named():
  with pytest.raises(ValueError, match="flip_prob.*max_rotation_deg|max_rotation_deg"):
    augment.AugmentConfig(flip_prob=2.0, max_rotation_deg=-1)


# --- The device part uses only ops with a GPU kernel -------------------------------------

# Graph plumbing that every device runs without a kernel of its own.
_STRUCTURAL = {"Placeholder", "NoOp", "Identity", "Const", "_Arg", "_Retval"}


def ops_without_gpu_kernel(fn, *specs):
  graph = tf.function(fn).get_concrete_function(*specs).graph
  missing = set()
  for op in graph.get_operations():
    if op.type in _STRUCTURAL:
      continue
    devices = {k.device_type for k in kernels.get_registered_kernels_for_op(op.type).kernel}
    if "GPU" not in devices:
      missing.add(op.type)
  return missing


SPECS = (tf.TensorSpec([None, None, None, 1], tf.uint8), tf.TensorSpec([None, 2], tf.int32),
         tf.TensorSpec([None, 68, 2], tf.float32), tf.TensorSpec([2], tf.int64))


def test_augmentation_graph_has_gpu_kernels_for_every_op():
  devices = {k.device_type for k in kernels.get_registered_kernels_for_op(
      "ImageProjectiveTransformV3").kernel}
  if "GPU" not in devices:
    pytest.fail("the installed TensorFlow registers no GPU kernels: install `tensorflow`, "
                "not `tensorflow-cpu`")
  for config in (FULL, dataclasses.replace(FULL, original_rounding=True)):
    missing = ops_without_gpu_kernel(
        lambda c, s, k, seed: augment.augment_batch(c, s, k, seed, config), *SPECS)
    assert not missing, f"ops without a GPU kernel in the device part: {sorted(missing)}"


def test_kernel_check_catches_a_host_only_op():
  def with_decode(canvas, sizes, keypoints, seed):
    images, keypoints_net, _ = augment.augment_batch(canvas, sizes, keypoints, seed, FULL)
    return images, tf.io.decode_png(tf.io.encode_png(canvas[0]))

  assert "DecodePng" in ops_without_gpu_kernel(with_decode, *SPECS)

  def with_string_op(canvas, sizes, keypoints, seed):
    images, _, _ = augment.augment_batch(canvas, sizes, keypoints, seed, FULL)
    return images, tf.strings.as_string(seed)

  assert "AsString" in ops_without_gpu_kernel(with_string_op, *SPECS)
