import csv
import json
import os

import pytest

import numpy as np
import pandas as pd
from PIL import Image

from conftest import run_module
from fkd_tf.evaluation import reports
from fkd_tf.data import pipeline
import fakes


def test_report_figures_on_known_predictions(tmp_path):
  truth = np.stack([fakes.face_template() * 100.0] * 4).astype(np.float32)
  inter_ocular = np.linalg.norm(truth[0, 36] - truth[0, 45])
  offsets = np.array([0.0, 3.0, 6.0, 12.0]) * inter_ocular / 100.0  # NME 0, 3, 6, 12 %
  pred = truth + offsets[:, None, None] * np.array([0.6, 0.8], np.float32)
  results = {"file_name": ["a_00.jpg", "b_00.jpg", "c_00.jpg", "d_00.jpg"],
             "pred_px": pred.astype(np.float32), "true_px": truth,
             "image_size": np.array([[120, 110]] * 4)}
  summary = reports.write_report(str(tmp_path), "test", results)
  np.testing.assert_allclose(summary["nme_io"], np.mean([0, 0.03, 0.06, 0.12]), rtol=1e-5)
  assert summary["failure_rate_10"] == 0.25
  np.testing.assert_allclose(summary["auc_10"], np.mean([1.0, 0.7, 0.4, 0.0]), rtol=1e-5)
  np.testing.assert_allclose(summary["nme_io_by_region"]["eyes"], summary["nme_io"], rtol=1e-5)
  assert summary["smoothl1_original_units"] > 0
  rows = list(csv.DictReader(open(tmp_path / "per_image_test.csv")))
  np.testing.assert_allclose([float(r["nme_io"]) for r in rows], [0, 0.03, 0.06, 0.12],
                             atol=1e-6)
  assert open(tmp_path / "per_image_test.csv").readline().strip() == (
      "file_name,nme_io,nme_box,mean_error_px")
  assert json.load(open(tmp_path / "metrics_test.json"))["count"] == 4
  assert Image.open(tmp_path / "ced_test.png").size == (640, 480)


def test_region_table_puts_a_mouth_only_error_on_the_mouth(tmp_path):
  truth = np.stack([fakes.face_template() * 100.0] * 3).astype(np.float32)
  inter_ocular = np.linalg.norm(truth[0, 36] - truth[0, 45])
  pred = truth.copy()
  pred[:, 48:68] += np.array([0.0, 0.05 * inter_ocular], np.float32)  # mouth 5 % low
  results = {"file_name": ["a_00.jpg", "b_00.jpg", "c_00.jpg"], "pred_px": pred,
             "true_px": truth, "image_size": np.array([[120, 110]] * 3)}
  summary = reports.write_report(str(tmp_path), "val", results)
  table = pd.read_csv(tmp_path / "per_region_val.csv", index_col="region")
  assert list(table.index) == ["jaw", "brows", "nose", "eyes", "mouth"]
  assert list(table.columns) == ["nme_io", "mean_error_px", "points"]
  np.testing.assert_allclose(table.loc["mouth", "nme_io"], 0.05, rtol=1e-4)
  np.testing.assert_allclose(table.loc["mouth", "mean_error_px"], 0.05 * inter_ocular,
                             rtol=1e-4)
  assert table.drop("mouth")["nme_io"].abs().max() < 1e-7
  assert table["points"].sum() == 68
  np.testing.assert_allclose(summary["nme_io"], 0.05 * 20 / 68, rtol=1e-4)
  assert summary["nme_io_by_region"] == table["nme_io"].to_dict()


def test_progress_bar_knows_the_number_of_batches(tfrecord_dir, capsys):
  dataset = pipeline.make_dataset(tfrecord_dir, "test", 4, training=False, with_names=True,
                                  cache=False)
  batches = int(dataset.cardinality())
  assert batches > 1
  results = reports.collect(dataset, lambda batch: batch["keypoints_px"].numpy())
  printed = capsys.readouterr().out
  assert f"{batches}/{batches}" in printed and "Unknown" not in printed
  assert len(results["file_name"]) == len(results["pred_px"]) > batches


def test_original_units_loss_is_zero_for_perfect_predictions():
  truth = np.stack([fakes.face_template() * 100.0] * 2).astype(np.float32)
  assert reports.original_units_loss(truth, truth, np.array([[150, 120]] * 2)) == 0.0


@pytest.mark.slow
def test_cli_on_the_smoke_export_agrees_with_training(smoke_run, tfrecord_dir, tmp_path):
  model_dir, _ = smoke_run
  result = run_module("fkd_tf.evaluate", f"--saved_model={model_dir}/export",
                      f"--tfrecord_dir={tfrecord_dir}", "--split=test",
                      f"--output_dir={tmp_path}")
  assert result.returncode == 0, result.stderr[-2000:]
  served = json.load(open(tmp_path / "metrics_test.json"))
  trained = json.load(open(os.path.join(model_dir, "eval_test", "metrics_test.json")))
  np.testing.assert_allclose(served["nme_io"], trained["nme_io"], rtol=1e-5)
  assert "NME_io" in result.stdout


def test_progress_in_a_log_or_pipe_has_no_terminal_codes(tfrecord_dir, capsys):
  dataset = pipeline.make_dataset(tfrecord_dir, "test", 4, training=False, with_names=True,
                                  cache=False)
  reports.collect(dataset, lambda batch: batch["keypoints_px"].numpy())
  printed = capsys.readouterr().out
  assert "\x1b" not in printed and "\b" not in printed
  batches = int(dataset.cardinality())
  assert printed.strip().splitlines()[-1].startswith(f"{batches}/{batches} batches")


def test_a_refused_record_is_one_line_naming_the_face():
  from fkd_tf.evaluate import record_problem  # pylint: disable=g-import-not-at-top
  message = ("assertion failed: [the record of] [Ann_01.jpg] [holds] [134] "
             "[keypoint values, not 136]\n\t [[{{node Assert}}]]")
  assert record_problem(message) == "the record of Ann_01.jpg holds 134 keypoint values, not 136"
  assert record_problem("Something else failed\nwith detail") == "Something else failed"


@pytest.mark.slow
def test_cli_on_a_hostile_record_prints_one_line(tfrecord_dir, tmp_path):
  # Records written without the converter's hashes, one face's eye corners at one spot:
  # NME_io would divide by zero. Before: a 30-line traceback (or an infinite NME_io).
  from fkd_tf.core import models  # pylint: disable=g-import-not-at-top
  from fkd_tf.core.framing import Framing  # pylint: disable=g-import-not-at-top
  from fkd_tf.serving import saved_model  # pylint: disable=g-import-not-at-top
  from fkd_tf.serving.module import Stage  # pylint: disable=g-import-not-at-top
  from test_pipeline import _eye_corners_at_one_spot, _records_without_hashes  # pylint: disable=g-import-not-at-top
  folder = str(tmp_path / "records")
  name = _records_without_hashes(tfrecord_dir, folder, _eye_corners_at_one_spot)
  export = saved_model.export([Stage(models.build("tiny"), Framing(90.0, "centered"))],
                              str(tmp_path / "export"), litert=False)
  result = run_module("fkd_tf.evaluate", f"--saved_model={export}",
                      f"--tfrecord_dir={folder}", "--split=test",
                      f"--output_dir={tmp_path / 'report'}")
  assert result.returncode == 1
  assert "Traceback" not in result.stderr
  assert result.stderr.strip().splitlines()[-1] == (
      f"error: --tfrecord_dir={folder} --split=test: the record of {name} holds its outer "
      "eye corners (points 36 and 45) at one spot")
