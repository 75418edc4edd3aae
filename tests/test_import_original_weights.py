"""tools.import_original_weights: the PyTorch original's weights in fkd_tf's ppbnet.

The seed files (../shared/seed: the original's checkpoint as numpy arrays, and its
preprocessing, outputs and keypoints on 8 test images) give the real numbers; without them
only the layout tests on synthetic weights run.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from conftest import REPO
import fakes
from fkd_tf.serving import run_folder
from fkd_tf.utils import io_utils
from fkd_tf.core import framing, geometry, models
from fkd_tf.data import decode
from fkd_tf.serving import saved_model, versions
from fkd_tf.serving.module import stage_of
from tools import import_original_weights as importer

SEED_DIR = os.path.join(REPO, os.pardir, "shared", "seed")
WEIGHTS_NPZ = os.path.join(SEED_DIR, "ppb_fkdnet_weights.npz")
REFERENCE_NPZ = os.path.join(SEED_DIR, "reference_outputs.npz")
TEST_IMAGES = os.path.join(fakes.SHARED_DATA, "test")

# Measured on the 8 reference images (TF 2.21, OpenCV 4.14): fkd_tf's evaluation framing vs
# the original's preprocessing.
# With original_rounding (configs/base.flags) fkd_tf frames at the original's geometry; what
# is left is gray before vs after the resize, two uint8 roundings vs none and TF's vs
# OpenCV's gray weights: max 0.0064 (1.6 / 255), mean 0.0014 per pixel.
ROUNDED_MAX_ABS = 2.0 / 255.0
ROUNDED_MEAN_ABS = 0.0016
# Without it, max 0.594 and mean 0.0106: the original truncates the rescaled size
# (int(100 * 103 / 89) = 115, not 115.73) and crops at integer offsets ((115 - 90) // 2 = 12,
# not 12.87), so its frame is shifted by up to ~0.9 net px and scaled by up to 0.7 %
# against fkd_tf's continuous one, which moves sharp edges.
CONTINUOUS_MAX_ABS = 0.62
CONTINUOUS_MEAN_ABS = 0.012
# The original's inputs and outputs, keypoints mapped back with fkd_tf's inverse frame:
# with original_rounding measured max 6e-5 px (float32 round-off); with the continuous
# frame mean 0.474 px, max 1.148 px (the frame difference above, away from the centre).
ROUNDED_INVERSE_MAX_PX = 1e-3
CONTINUOUS_INVERSE_MEAN_PX = 0.5
CONTINUOUS_INVERSE_MAX_PX = 1.2
# fkd_tf's own decoding, framing, network and inverse frame end to end: with
# original_rounding measured mean 0.068 px, max 0.202 px (continuous: 0.677, 2.749).
END_TO_END_MEAN_PX = 0.08
END_TO_END_MAX_PX = 0.25

needs_seed = pytest.mark.skipif(not os.path.isdir(SEED_DIR),
                                reason=f"the original's seed files are not at {SEED_DIR}")
needs_images = pytest.mark.skipif(not os.path.isdir(TEST_IMAGES),
                                  reason=f"the raw test images are not at {TEST_IMAGES}")


def _selu(x):
  return 1.0507009873554805 * np.where(x > 0, x, 1.6732632423543772 * np.expm1(np.minimum(x, 0)))


def _conv_nchw(x, weight, bias):
  """PyTorch's valid Conv2d on one [C, H, W] image, in numpy."""
  windows = np.lib.stride_tricks.sliding_window_view(x, weight.shape[2:], axis=(1, 2))
  return np.einsum("chwij,ocij->ohw", windows, weight) + bias[:, None, None]


def _pool_nchw(x):
  c, h, w = x.shape
  return x[:, :h // 2 * 2, :w // 2 * 2].reshape(c, h // 2, 2, w // 2, 2).max(axis=(2, 4))


def original_forward(arrays, image):
  """The original's forward pass as its PyTorch code writes it (NCHW, cat((pooled, branch)),
  NCHW flatten), in float64 numpy: [90, 90] -> [136]."""
  a = {k: v.astype(np.float64) for k, v in arrays.items()}
  layer = lambda x, name: _selu(_conv_nchw(x, a[name + "_weight"], a[name + "_bias"]))
  pooled = _pool_nchw(layer(image[np.newaxis].astype(np.float64), "conv1"))
  x = np.concatenate([pooled, layer(pooled, "conv2")], axis=0)
  for name in ("conv3", "conv4", "conv5"):
    x = _pool_nchw(layer(x, name))
  return _selu(a["FC1_weight"] @ x.reshape(-1) + a["FC1_bias"])


def synthetic_arrays(seed=0):
  """Random weights of the original's shapes, LeCun-uniform so SELU keeps values O(1)
  (larger ones make float32 round-off, not layout, the test's subject)."""
  rng = np.random.default_rng(seed)
  arrays = {}
  for name, shape in importer.ORIGINAL_SHAPES.items():
    fan_in = np.prod(importer.ORIGINAL_SHAPES[name.replace("_bias", "_weight")][1:])
    bound = np.sqrt(3.0 / fan_in)
    arrays[name] = rng.uniform(-bound, bound, shape).astype(np.float32)
  return arrays


def ppbnet_with(arrays):
  network = models.ppbnet()
  importer.set_original_weights(network, arrays)
  return network


@pytest.fixture(scope="module")
def reference():
  if not os.path.isfile(REFERENCE_NPZ):
    pytest.skip(f"{REFERENCE_NPZ} is absent")
  with np.load(REFERENCE_NPZ) as npz:
    return {name: npz[name] for name in npz.files}


@pytest.fixture(scope="module")
def original_network():
  if not os.path.isfile(WEIGHTS_NPZ):
    pytest.skip(f"{WEIGHTS_NPZ} is absent")
  return ppbnet_with(importer.read_original_weights(WEIGHTS_NPZ))


@pytest.fixture(scope="module")
def test_faces(reference):
  """The 8 reference faces: encoded bytes, decoded as fkd_tf decodes them, and RGB."""
  if not os.path.isdir(TEST_IMAGES):
    pytest.skip(f"the raw test images are not at {TEST_IMAGES}")
  faces = {"bytes": [], "gray": [], "rgb": []}
  for name in reference["file_names"]:
    with open(os.path.join(TEST_IMAGES, str(name)), "rb") as f:
      image_bytes = f.read()
    faces["bytes"].append(image_bytes)
    faces["gray"].append(decode.decode_gray(tf.constant(image_bytes)))
    faces["rgb"].append(tf.io.decode_image(image_bytes, channels=3).numpy())
  return faces


def evaluation_frame(gray_images, **framing_options):
  """fkd_tf's evaluation framing of each image: (images_net [N, 90, 90], net_from_image)."""
  images_net, matrices = [], []
  for gray in gray_images:
    framed, matrix = framing.frame_batch(
        gray[tf.newaxis], framing.whole_image_regions(tf.shape(gray)[tf.newaxis, :2]), 100.0,
        **framing_options)
    images_net.append(framed.numpy()[0, :, :, 0])
    matrices.append(matrix.numpy()[0])
  return np.stack(images_net), np.stack(matrices)


def keypoints_px_by_original_frame(outputs, frame):
  """The original's mapping back: x_image = (x_90 + left) * sx, y likewise; [N, 68, 2]."""
  keypoints_90 = outputs.reshape(-1, 68, 2) * 50.0 + 100.0
  sx, sy, left, top = (frame[:, i, np.newaxis] for i in range(4))
  return np.stack([(keypoints_90[..., 0] + left) * sx, (keypoints_90[..., 1] + top) * sy], -1)


# --- layout: synthetic weights, no seed needed -------------------------------------------


def test_layouts_give_the_pytorch_forward_pass():
  arrays = synthetic_arrays()
  images = np.random.default_rng(1).uniform(0, 1, [2, 90, 90]).astype(np.float32)
  keras_out = ppbnet_with(arrays)(images[..., np.newaxis], training=False).numpy()
  expected = np.stack([original_forward(arrays, image) for image in images])
  np.testing.assert_allclose(keras_out, expected, atol=1e-4)


def test_fused_channels_and_flatten_are_permuted():
  order = importer.fused_channel_order()
  assert list(order[:32]) == list(range(32, 64))  # ppbnet's branch is the original's second
  assert list(order[32:]) == list(range(32))
  flat = importer.nchw_index_of_nhwc_flatten()
  c, h, w = 5, 2, 3  # Keras position h*256 + w*64 + c holds PyTorch's c*16 + h*4 + w
  assert flat[h * 256 + w * 64 + c] == c * 16 + h * 4 + w
  assert sorted(flat) == list(range(1024))


@pytest.mark.parametrize("change, message", [
    (lambda a: a.pop("conv3_bias"), "conv3_bias is missing"),
    (lambda a: a.update(FC1_weight=np.zeros([136, 1000], np.float32)),
     "FC1_weight has shape (136, 1000), expected (136, 1024)"),
    (lambda a: a["conv1_weight"].__setitem__((0, 0, 0, 0), np.nan), "conv1_weight holds NaN"),
])
def test_bad_npz_names_the_array(tmp_path, change, message):
  arrays = synthetic_arrays()
  change(arrays)
  path = str(tmp_path / "weights.npz")
  np.savez(path, **arrays)
  with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
    importer.read_original_weights(path)


# --- the run folder -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def imported_run(tfrecord_dir, tmp_path_factory):
  """The import on the real weights when present (synthetic ones otherwise) and the
  synthetic records."""
  npz = WEIGHTS_NPZ
  if not os.path.isfile(npz):
    npz = str(tmp_path_factory.mktemp("npz") / "weights.npz")
    np.savez(npz, **synthetic_arrays(), epoch=np.array(50))
  model_dir = str(tmp_path_factory.mktemp("imported") / "original")
  importer.import_weights(npz, model_dir, tfrecord_dir)
  return model_dir, npz


@pytest.mark.slow
def test_run_folder_is_a_base_flags_run(imported_run, tfrecord_dir):
  model_dir, npz = imported_run
  assert sorted(os.listdir(model_dir)) == sorted(
      ["best.weights.h5", "config.json", "dataset_info.json", "flags.txt",
       importer.PROVENANCE])
  # What the training command itself builds from configs/base.flags, in a fresh process
  # (absl flags can be defined only once per process).
  script = ("import json, sys; from absl import flags; from fkd_tf import train; "
            "from fkd_tf.training import train_lib; "
            "train.define_flags(); flags.FLAGS(sys.argv); "
            "print(json.dumps(train_lib.config_to_json(train.config_from_flags())))")
  trained = subprocess.run(
      [sys.executable, "-c", script, "--flagfile=configs/base.flags",
       f"--model_dir={model_dir}", f"--tfrecord_dir={tfrecord_dir}"], cwd=REPO,
      env=dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2"), capture_output=True,
      text=True, check=True)
  with open(os.path.join(model_dir, "config.json")) as f:
    assert json.load(f) == json.loads(trained.stdout.strip().splitlines()[-1])
  with open(os.path.join(model_dir, "dataset_info.json")) as f, open(
      os.path.join(tfrecord_dir, "dataset_info.json")) as g:
    assert json.load(f) == json.load(g)
  with open(os.path.join(model_dir, importer.PROVENANCE)) as f:
    provenance = json.load(f)
  assert provenance["npz_sha256"] == io_utils.sha256_of(npz)
  assert provenance["original_epoch"] == 50


def test_load_network_gives_the_imported_weights(imported_run):
  model_dir, npz = imported_run
  network, config = run_folder.load_network(model_dir)
  assert config.model == "ppbnet" and config.augment.rescale_size == 100.0
  images = np.random.default_rng(2).uniform(0, 1, [2, 90, 90, 1]).astype(np.float32)
  expected = ppbnet_with(importer.read_original_weights(npz))(images, training=False)
  np.testing.assert_array_equal(network(images, training=False).numpy(), expected.numpy())


def test_existing_model_dir_is_kept_unless_overwrite(imported_run, tfrecord_dir, tmp_path):
  _, npz = imported_run
  model_dir = tmp_path / "run"
  model_dir.mkdir()
  (model_dir / "keep.txt").write_text("mine")
  with pytest.raises(FileExistsError, match="--overwrite"):
    importer.import_weights(npz, str(model_dir), tfrecord_dir)
  importer.import_weights(npz, str(model_dir), tfrecord_dir, overwrite=True)
  assert not (model_dir / "keep.txt").exists()
  assert (model_dir / "best.weights.h5").exists()
  assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]  # no temporaries left


def test_bad_weights_leave_no_folder(tfrecord_dir, tmp_path):
  arrays = synthetic_arrays()
  del arrays["FC1_bias"]
  npz = str(tmp_path / "weights.npz")
  np.savez(npz, **arrays)
  with pytest.raises(ValueError, match="FC1_bias is missing"):
    importer.import_weights(npz, str(tmp_path / "run"), tfrecord_dir)
  assert os.listdir(tmp_path) == ["weights.npz"]


# --- real numbers: the original's checkpoint and its outputs ------------------------------


@needs_seed
def test_outputs_match_the_original(original_network, reference):
  outputs = original_network(reference["inputs"][..., np.newaxis], training=False).numpy()
  np.testing.assert_allclose(outputs, reference["outputs"], atol=1e-4)  # measured 4.8e-7


@needs_seed
def test_numpy_reference_is_the_original(reference):
  """The numpy forward pass the layout test trusts gives PyTorch's outputs too."""
  arrays = importer.read_original_weights(WEIGHTS_NPZ)
  outputs = np.stack([original_forward(arrays, image) for image in reference["inputs"][:2]])
  np.testing.assert_allclose(outputs, reference["outputs"][:2], atol=1e-4)


@needs_seed
def test_original_frame_maps_outputs_to_keypoints_px(reference):
  keypoints_px = keypoints_px_by_original_frame(reference["outputs"], reference["frame"])
  np.testing.assert_allclose(keypoints_px, reference["keypoints_px"], atol=1e-3)


@needs_seed
@needs_images
def test_original_rounding_gives_the_originals_frames(test_faces, reference):
  """(sx, sy, left, top) of the seed: x_image = (x_90 + left) * sx, y likewise."""
  sizes = np.array([gray.shape[:2] for gray in test_faces["gray"]], np.float32)
  regions = framing.whole_image_regions(sizes)
  net_from_image = geometry.frame_matrix(regions, tf.fill([len(sizes), 2], 0.5), 100.0,
                                         original_rounding=True).numpy()
  sx, sy, left, top = reference["frame"].T
  assert np.array_equal(-net_from_image[:, 0, 2], left)
  assert np.array_equal(-net_from_image[:, 1, 2], top)
  # The rescaled sizes are whole pixels (89 x 103 -> 100 x 115), the seed's sx their ratio.
  rescaled = sizes[:, ::-1] * np.stack([net_from_image[:, 0, 0], net_from_image[:, 1, 1]], 1)
  np.testing.assert_allclose(rescaled, np.round(rescaled), atol=1e-4)
  np.testing.assert_allclose(1 / net_from_image[:, 0, 0], sx, rtol=2e-7)
  np.testing.assert_allclose(1 / net_from_image[:, 1, 1], sy, rtol=2e-7)


@needs_seed
@needs_images
def test_evaluation_framing_is_the_originals_with_original_rounding(test_faces, reference):
  rounded, _ = evaluation_frame(test_faces["gray"], original_rounding=True)
  difference = np.abs(rounded - reference["inputs"])
  assert difference.max() <= ROUNDED_MAX_ABS, difference.max()
  assert difference.mean() <= ROUNDED_MEAN_ABS, difference.mean()
  continuous, _ = evaluation_frame(test_faces["gray"])
  difference = np.abs(continuous - reference["inputs"])
  assert ROUNDED_MAX_ABS < difference.max() <= CONTINUOUS_MAX_ABS, difference.max()
  assert difference.mean() <= CONTINUOUS_MEAN_ABS, difference.mean()


@needs_seed
@needs_images
def test_keypoints_px_through_fkd_inverse_frame(original_network, test_faces, reference):
  """The original's inputs and outputs mapped back with fkd_tf's inverse frame: with
  original_rounding, its own keypoints; without, off by the two frames' difference."""
  outputs = original_network(reference["inputs"][..., np.newaxis], training=False)
  distance = {}
  for rounding in (True, False):
    _, net_from_image = evaluation_frame(test_faces["gray"], original_rounding=rounding)
    keypoints_px = framing.keypoints_px_from_outputs(
        outputs, tf.constant(net_from_image), "original").numpy()
    distance[rounding] = np.linalg.norm(keypoints_px - reference["keypoints_px"], axis=-1)
  assert distance[True].max() <= ROUNDED_INVERSE_MAX_PX, distance[True].max()
  assert distance[False].mean() <= CONTINUOUS_INVERSE_MEAN_PX, distance[False].mean()
  assert distance[False].max() <= CONTINUOUS_INVERSE_MAX_PX, distance[False].max()
  assert distance[False].mean() > 100 * distance[True].max()


@pytest.mark.slow
@needs_seed
@needs_images
def test_exported_import_serves_the_originals_keypoints(imported_run, test_faces, reference,
                                                        tmp_path):
  """End to end: the imported run exported as training exports it, its served graph fed
  the 8 test images' bytes (decode, framing, network, inverse frame: what fkd_tf.evaluate
  measures), against the original's keypoints in image pixels."""
  model_dir, _ = imported_run
  stage = stage_of(*run_folder.load_network(model_dir))
  assert stage.framing.original_rounding  # from configs/base.flags, through the run's config.json
  path = saved_model.export([stage], str(tmp_path / "export"))
  serve = versions.load_saved_model(path).signatures["serving_default"]
  keypoints_px = serve(image_bytes=tf.constant(test_faces["bytes"]))["keypoints"].numpy()
  distance = np.linalg.norm(keypoints_px - reference["keypoints_px"], axis=-1)
  assert distance.mean() <= END_TO_END_MEAN_PX, distance.mean()
  assert distance.max() <= END_TO_END_MAX_PX, distance.max()
