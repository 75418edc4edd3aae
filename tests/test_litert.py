"""The one-face LiteRT path gives the SavedModel's keypoints (issue 14: within 0.05 px)."""

import json
import os

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

import fakes
import fkd_tf
from fkd_tf.core import framing, models
from fkd_tf.data.decode import decode_gray
from fkd_tf.serving import litert, saved_model
from fkd_tf.core.framing import Framing
from fkd_tf.serving.module import Stage

# Trains, converts to LiteRT or runs commands in subprocesses: the slow tier.
pytestmark = pytest.mark.slow


def _face_network(name, seed):
  """A network whose outputs sit near a face template (random weights alone collapse all
  68 points onto one, which frames nothing)."""
  tf.keras.utils.set_random_seed(seed)
  network = models.build(name)
  head = network.get_layer("keypoints")
  kernel, _ = head.get_weights()
  template = (fakes.face_template() * 60.0 + 15.0 - 45.0) / 45.0
  head.set_weights([kernel * 0.05, template.reshape(-1).astype(np.float32)])
  return network


@pytest.fixture(scope="module")
def cascade_export(tmp_path_factory):
  # Tiny networks keep the suite fast; the shipped architecture's conversion has its own
  # test below.
  coarse = _face_network("tiny", 0)
  refine = _face_network("tiny", 1)
  stages = [Stage(coarse, Framing(90.0, "centered")),
            Stage(refine, Framing(90.0, "centered", 1.25)),
            Stage(refine, Framing(90.0, "centered", 1.25), flip_average=True)]
  return saved_model.export(stages, str(tmp_path_factory.mktemp("cascade")))


def _images():
  rng = np.random.default_rng(3)
  faces = []
  for width, height in ((120, 150), (97, 83), (200, 171)):
    gray, _ = fakes.draw_face(width, height, (8, 10, width - 6, height - 5), rng)
    faces.append(gray)
  rgb = np.stack([faces[0], np.roll(faces[0], 7, axis=1), faces[0][::-1]], axis=-1)
  rgba = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 200, np.uint8)], axis=-1)
  return faces + [rgb, rgba]


@pytest.mark.parametrize("region", [(0.0, 0.0, 120.0, 150.0), (10.5, 20.25, 80.0, 90.0),
                                    (-30.0, -10.0, 60.0, 200.0), (100.0, 120.0, 400.0, 300.0)])
@pytest.mark.parametrize("original_rounding", [False, True])
def test_numpy_frame_equals_the_graph_frame(region, original_rounding):
  for image in _images()[::2] + [_images()[3], _images()[4]]:
    encoded = fakes.encode(image, "PNG")
    gray = decode_gray(tf.constant(encoded))[tf.newaxis]
    expected, _ = framing.frame_batch(gray, tf.constant([region], tf.float32), 100.0,
                                      original_rounding=original_rounding)
    frame, _ = litert.gray_frame(image, region, 100.0, original_rounding)
    assert frame.shape == (90, 90)
    np.testing.assert_allclose(frame, expected.numpy()[0, :, :, 0], atol=2e-3)


def test_export_writes_one_litert_file_per_distinct_network(cascade_export):
  assert litert.has_litert(cascade_export)
  cascade = litert.LiteRTCascade(cascade_export)
  assert [s["litert"] for s in cascade.stages] == ["network_0.tflite", "network_1.tflite",
                                                     "network_1.tflite"]


def test_litert_keypoints_match_the_saved_model(cascade_export):
  fast = fkd_tf.load(cascade_export)
  graph = fkd_tf.load(cascade_export, backend="saved_model")
  assert (fast.backend, graph.backend) == ("litert", "saved_model")
  images = _images()
  encoded = [fakes.encode(image, "PNG") for image in images]
  whole_fast, whole_graph = fast.predict(encoded), graph.predict(encoded)
  assert whole_fast.shape == (5, 68, 2)
  assert np.abs(whole_fast - whole_graph).max() < 0.05
  boxes = [[10, 12, 100, 140], [5, 5, 90, 80], [30, 20, 190, 160], [10, 12, 100, 140],
           [0, 0, 0, 0]]  # the last: no box, the whole image
  boxed_fast = fast.predict(images, boxes=boxes)
  boxed_graph = graph.predict(encoded, boxes=boxes)
  assert np.abs(boxed_fast - boxed_graph).max() < 0.05
  np.testing.assert_allclose(boxed_fast[4], whole_fast[4], atol=1e-4)
  assert np.abs(boxed_fast[0] - whole_fast[0]).max() > 0.5  # a box changes the frame


def test_real_faces_within_0_05_px(cascade_export, real_dir):
  import glob  # pylint: disable=g-import-not-at-top
  paths = sorted(glob.glob(f"{real_dir}/test/*.jpg"))[:6]
  fast = fkd_tf.load(cascade_export).predict(paths)
  graph = fkd_tf.load(cascade_export, backend="saved_model").predict(paths)
  assert np.abs(fast - graph).max() < 0.05
  arrays = [np.asarray(Image.open(p)) for p in paths]  # RGBA, as the data set's files
  np.testing.assert_allclose(fkd_tf.load(cascade_export).predict(arrays), fast, atol=1e-4)


@pytest.mark.parametrize("box, message", [
    ([0, 0, 2, 50], "4 px"), ([np.inf, 0, 50, 50], "not finite"),
    ([500, 500, 600, 600], "outside"), ([-1e30, -1e30, 1e30, 1e30], "4 px")])
def test_degenerate_boxes_are_refused_by_both_backends(cascade_export, box, message):
  image = _images()[0]
  with pytest.raises(ValueError, match=message):
    fkd_tf.load(cascade_export).predict(image, boxes=[box])
  with pytest.raises(ValueError, match=message):  # checked in Python first, index named
    fkd_tf.load(cascade_export, backend="saved_model").predict(image, boxes=[box])


def test_box_count_must_match_in_the_graph(cascade_export):
  serve = tf.saved_model.load(cascade_export).signatures["with_boxes"]
  image = tf.constant([fakes.encode(_images()[0], "PNG")] * 2)
  with pytest.raises(tf.errors.InvalidArgumentError, match="one box"):
    serve(image_bytes=image, boxes=tf.constant([[10.0, 10.0, 80.0, 80.0]]))


def test_evaluate_reports_the_same_figures_on_both_backends(cascade_export, tfrecord_dir,
                                                            tmp_path):
  import json  # pylint: disable=g-import-not-at-top
  from conftest import run_module  # pylint: disable=g-import-not-at-top
  figures = {}
  for backend in ("saved_model", "litert"):
    out = tmp_path / backend
    result = run_module("fkd_tf.evaluate", f"--saved_model={cascade_export}",
                        f"--tfrecord_dir={tfrecord_dir}", "--split=test",
                        f"--output_dir={out}", f"--backend={backend}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "test: 9 faces" in result.stdout
    figures[backend] = json.load(open(out / "metrics_test.json"))
  assert figures["litert"]["backend"] == "litert"
  assert abs(figures["litert"]["mean_error_px"] - figures["saved_model"]["mean_error_px"]) < 0.01


def test_box_passes_limits_the_refinements_a_box_runs(tmp_path):
  coarse, refine = _face_network("tiny", 4), _face_network("tiny", 5)
  stages = [Stage(coarse, Framing(90.0, "centered")),
            Stage(refine, Framing(90.0, "centered", 1.25)),
            Stage(refine, Framing(90.0, "centered", 1.25))]
  limited = saved_model.export(stages, str(tmp_path / "limited"), box_passes=1)
  single = saved_model.export(stages[:2], str(tmp_path / "single"))
  full = saved_model.export(stages, str(tmp_path / "full"))
  image = _images()[0]
  encoded = fakes.encode(image, "PNG")
  box = [[10, 12, 100, 140]]
  expected = fkd_tf.load(single).predict(image, boxes=box)
  for backend in ("litert", "saved_model"):
    model = fkd_tf.load(limited, backend=backend)
    np.testing.assert_allclose(model.predict(encoded, boxes=box), expected, atol=0.05)
    # Whole images still run every stage.
    np.testing.assert_allclose(model.predict(encoded),
                               fkd_tf.load(full, backend=backend).predict(encoded), atol=0.05)


def test_the_shipped_architecture_runs_alike_on_litert(tmp_path):
  network = _face_network("mobilenet_050", 2)
  path = saved_model.export([Stage(network, Framing(90.0, "centered"))], str(tmp_path / "m"),
                            box_passes=None)
  frames = np.random.default_rng(0).uniform(size=(3, 90, 90, 1)).astype(np.float32)
  cascade = litert.LiteRTCascade(path)
  stage = cascade.stages[0]
  expected = network(frames, training=False).numpy().reshape(3, 68, 2) * 45.0 + 45.0
  for frame, keypoints in zip(frames, expected):
    np.testing.assert_allclose(cascade._network(stage, frame[:, :, 0]), keypoints, atol=2e-3)


def test_float16_litert_files_are_half_the_size_and_agree_with_their_saved_model(tmp_path):
  # The shipped architecture with trained-like batch norms (fresh ones fold to nothing).
  from test_fold import _with_trained_statistics  # pylint: disable=g-import-not-at-top
  # One network as both stages: a cascade, converted once.
  network = _with_trained_statistics(_face_network("mobilenet_050", 4), seed=1)
  stages = [Stage(network, Framing(90.0, "centered")),
            Stage(network, Framing(90.0, "centered", 1.25))]
  full = saved_model.export(stages, str(tmp_path / "float32"))
  half = saved_model.export(stages, str(tmp_path / "float16"), litert_float16=True)
  sizes = {path: os.path.getsize(os.path.join(path, "assets.extra", "network_0.tflite"))
           for path in (full, half)}
  assert 0.45 < sizes[half] / sizes[full] < 0.6
  metadata = json.load(open(os.path.join(half, "assets.extra", litert.METADATA_FILE)))
  assert metadata["litert_weights"] == "float16"
  encoded = [fakes.encode(image, "PNG") for image in _images()]
  fast = fkd_tf.load(half).predict(encoded)
  np.testing.assert_allclose(fast, fkd_tf.load(half, backend="saved_model").predict(encoded),
                             atol=0.05)
  # Rounding moved the keypoints a little from the float32 export's, not a lot.
  change = np.abs(fast - fkd_tf.load(full, backend="saved_model").predict(encoded)).max()
  assert 0 < change < 2.0
