import json

import pytest

from conftest import run_module

# Trains, converts to LiteRT or runs commands in subprocesses: the slow tier.
pytestmark = pytest.mark.slow


def test_bench_quick_subset_prints_and_writes_figures(smoke_run, tfrecord_dir, raw_dir,
                                                      tmp_path):
  model_dir, _ = smoke_run
  out = tmp_path / "bench.json"
  result = run_module("fkd_tf.bench", "--what=pipeline,train,face,photo,savedmodel,load",
                      "--calls=50", f"--tfrecord_dir={tfrecord_dir}", "--batch_size=8",
                      "--models=tiny", "--train_flagfiles=configs/smoke.flags",
                      "--steps=2", "--seconds=0.5", f"--saved_model={model_dir}/export",
                      f"--images={raw_dir}/test", "--faces=4",
                      f"--keypoints_csv={raw_dir}/test_frames_keypoints.csv",
                      f"--json_out={out}")
  assert result.returncode == 0, result.stderr[-3000:]
  report = json.load(open(out))
  assert report["matmul_gflops"] > 0  # 'train' measures the peak its bound needs
  assert report["pipeline"]["host_decode_pad"] > 0
  rows = report["train"]
  assert [(r["label"], r["fed_from"]) for r in rows] == [
      ("tiny float32", "augmented pipeline"), ("tiny float32", "cached batch"),
      ("smoke.flags", "augmented pipeline"), ("smoke.flags", "cached batch")]
  for row in rows:
    assert row["images_per_s"] > 0 and 0 < row["fraction_of_bound"]
    assert row["epoch_s"] > 0 and row["frozen_layers"] == 0
  assert rows[0]["train_mflop_per_image"] == rows[1]["train_mflop_per_image"] > 0
  for name in ("bytes", "bytes_with_boxes", "preprocessed"):
    figures = report["savedmodel"][name]
    assert figures["p99_ms"] >= figures["p50_ms"] > 0 and figures["batch64_ms_per_face"] > 0
  sm = report["savedmodel"]
  assert sm["bytes_over_preprocessed"] == (sm["bytes"]["batch64_ms_per_face"] /
                                           sm["preprocessed"]["batch64_ms_per_face"])
  face = report["face"]
  assert face["backend"] == "litert" and face["calls"] == 3 * 4
  assert face["ratio_p50"] == face["fkd_tf_p50_ms"] / face["dlib_p50_ms"] > 0
  photo = report["photo"]
  assert photo["photos"] == 1 and photo["api"]["ratio_p50"] > 0
  assert photo["signature"] is None  # a training run's export has no detector
  assert "none in this export" in result.stdout
  assert "one face from a box, 1 thread" in result.stdout
  assert "TF Serving batch 64: bytes in" in result.stdout
  assert report["load"]["calls"] == 50 and report["load"]["rss_end_mb"] > 0
  assert "float32 matmul peak" in result.stdout and "of the bound" in result.stdout


def test_bench_help_lists_its_flags_without_importing_tensorflow():
  result = run_module("fkd_tf.bench", "--help")
  assert result.returncode == 0, result.stderr[-2000:]
  assert "--train_flagfiles" in result.stdout and "--photo_scale" in result.stdout
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  from conftest import REPO  # pylint: disable=g-import-not-at-top
  check = subprocess.run(
      [sys.executable, "-c", "import sys, fkd_tf.bench as b; b.define_flags(); "
       "print('tensorflow' in sys.modules)"], cwd=REPO, capture_output=True, text=True)
  assert check.stdout.strip() == "False", check.stderr[-2000:]


def test_bench_times_the_shipped_model_without_saved_model(raw_dir):
  # --saved_model's default (None) reached versions.load_saved_model as a TypeError.
  result = run_module("fkd_tf.bench", "--what=load", "--calls=3", "--faces=1",
                      f"--images={raw_dir}/test")
  assert result.returncode == 0, result.stderr[-3000:]
  assert "load: 3 calls" in result.stdout
