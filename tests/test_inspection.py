import pytest
import csv
import os

import numpy as np
import tensorflow as tf

from conftest import run_module
from fkd_tf.evaluation import inspection, reports
from fkd_tf.core import augment, models
from fkd_tf.serving import saved_model
from fkd_tf.core.framing import Framing
from fkd_tf.serving.module import Stage

# Trains, converts to LiteRT or runs commands in subprocesses: the slow tier.
pytestmark = pytest.mark.slow

SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float32)
BOX_BLUR = np.full((3, 3), 1 / 9, np.float32)


def hand_set_network():
  network = models.ppbnet()
  kernel, bias = network.get_layer("conv1").get_weights()
  rng = np.random.default_rng(0)
  kernel[:] = rng.normal(size=kernel.shape) * 0.1
  kernel[:, :, 0, 0] = SOBEL_X
  kernel[:, :, 0, 1] = BOX_BLUR
  kernel[:, :, 0, 2] = SOBEL_X.T
  kernel[:, :, 0, 3] = [[0.9, -0.1, 0.8], [0.7, 0.2, 0.9], [-0.05, 0.6, 0.7]]  # lopsided
  network.get_layer("conv1").set_weights([kernel, bias])
  return network


def test_classification_names_hand_set_kernels():
  kernels, name = inspection.first_conv_kernels(hand_set_network())
  assert name == "conv1"
  kinds = [inspection.classify_kernel(kernels[:, :, 0, i])["kind"] for i in range(4)]
  assert kinds == ["edge", "blur", "edge", "other"]
  sobel = inspection.classify_kernel(SOBEL_X)
  assert abs(sobel["gradient_angle_deg"]) < 1e-6  # a horizontal gradient
  assert abs(inspection.classify_kernel(SOBEL_X.T)["gradient_angle_deg"] - 90) < 1e-6
  assert inspection.classify_kernel(-BOX_BLUR)["photo_negative"]


def test_filter_grid_and_feature_maps():
  kernels, _ = inspection.first_conv_kernels(hand_set_network())
  assert len(inspection.kernel_tiles(kernels)) == kernels.shape[-1] == 32
  image = np.random.default_rng(1).uniform(size=(90, 90, 1)).astype(np.float32)
  maps = inspection.feature_maps(image, kernels)
  expected = tf.nn.conv2d(image[np.newaxis], SOBEL_X[:, :, None, None], 1, "VALID")
  np.testing.assert_allclose(maps[..., 0], expected.numpy()[0, ..., 0], atol=1e-5)
  assert maps.shape == (88, 88, 32)


def test_worst_faces_sorted_and_match_the_evaluation_csv(tfrecord_dir, tmp_path):
  network = hand_set_network()
  config = augment.AugmentConfig()
  kernels, name = inspection.first_conv_kernels(network)
  counts, chosen = inspection.inspect_run(
      kernels, name, 100.0, reports.network_predictor(network, Framing(config.rescale_size, "original")),
      tfrecord_dir, str(tmp_path / "inspect"), worst=4, log_dir=str(tmp_path / "logs"))
  assert sum(counts.values()) == 32 and counts["edge"] >= 2 and counts["blur"] >= 1
  nmes = [r["nme_io"] for r in chosen]
  assert nmes == sorted(nmes, reverse=True) and len(chosen) == 4
  reports.evaluate_split(reports.network_predictor(network, Framing(config.rescale_size, "original")),
                          tfrecord_dir, "test", str(tmp_path / "eval"))
  per_image = {r["file_name"]: float(r["nme_io"])
               for r in csv.DictReader(open(tmp_path / "eval" / "per_image_test.csv"))}
  assert max(per_image.values()) == nmes[0]
  for row in chosen:
    assert abs(per_image[row["file_name"]] - row["nme_io"]) < 1e-6
  for name in ("filters.png", "feature_maps.png", "filters.txt", "worst_faces.png",
               "worst_faces.csv", "region_errors.png"):
    assert os.path.exists(tmp_path / "inspect" / name)
  assert os.listdir(tmp_path / "logs" / "inspect")


def test_kernels_read_from_an_export_are_the_networks(tmp_path):
  network = hand_set_network()
  path = saved_model.export([Stage(network, Framing(100.0, "original"))],
                            str(tmp_path / "export"))
  kernels, _ = inspection.saved_model_first_conv(path)
  np.testing.assert_array_equal(kernels, inspection.first_conv_kernels(network)[0])


def test_cli_on_a_saved_model_writes_under_the_current_folder(smoke_run, tfrecord_dir,
                                                              tmp_path):
  """Without --output_dir the reports go to ./inspect_<export name>, never beside the
  export (the shipped model's is inside the installed package)."""
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  from conftest import REPO  # pylint: disable=g-import-not-at-top
  model_dir, _ = smoke_run
  before = sorted(os.listdir(model_dir))
  result = subprocess.run(
      [sys.executable, "-m", "fkd_tf.inspect", f"--saved_model={model_dir}/export",
       f"--tfrecord_dir={tfrecord_dir}", "--worst=3"], cwd=tmp_path,
      env=dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2"), capture_output=True,
      text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-2000:]
  assert "first layer:" in result.stdout
  out = tmp_path / f"inspect_{os.path.basename(model_dir)}"
  assert len(list(csv.DictReader(open(out / "worst_faces.csv")))) == 3
  assert sorted(os.listdir(model_dir)) == before
