import csv
import json
import os

import numpy as np
import pytest

from conftest import run_module
from fkd_tf.core import config as config_lib
from fkd_tf.data import records
from fkd_tf.core.augment import AugmentConfig

# Trains, converts to LiteRT or runs commands in subprocesses: the slow tier.
pytestmark = pytest.mark.slow


def test_smoke_training_lowers_the_loss_and_fills_the_run_folder(smoke_run):
  model_dir, result = smoke_run
  with open(os.path.join(model_dir, "training_log.csv")) as f:
    log = list(csv.DictReader(f))
  assert len(log) == 3
  losses = [float(row["loss"]) for row in log]
  assert losses[-1] < losses[0]
  assert {"val_loss", "val_nme_io", "learning_rate"} <= set(log[0])
  for name in ("config.json", "flags.txt", "dataset_info.json", "best.weights.h5",
               "val_faces.png", "results.json", "eval_val/metrics_val.json",
               "eval_test/metrics_test.json", "eval_test/per_image_test.csv",
               "eval_test/ced_test.png", "export/1/saved_model.pb"):
    assert os.path.exists(os.path.join(model_dir, name)), name
  events = [n for _, _, files in os.walk(os.path.join(model_dir, "logs")) for n in files
            if n.startswith("events.out")]
  assert len(events) >= 3  # train, validation, val_faces
  assert "--epochs=3" in open(os.path.join(model_dir, "flags.txt")).read()
  assert "test: 9 faces" in result.stdout
  results = json.load(open(os.path.join(model_dir, "results.json")))
  assert results["test"]["count"] == 9 and np.isfinite(results["test"]["nme_io"])


def test_real_images_smoke_training_lowers_the_loss(real_subset_dir, tmp_path):
  from fkd_tf.data import convert  # pylint: disable=g-import-not-at-top
  from fkd_tf.training import train_lib  # pylint: disable=g-import-not-at-top
  records_dir = str(tmp_path / "records")
  convert.convert(real_subset_dir, records_dir, val_fraction=0.2)
  config = config_lib.TrainConfig(tfrecord_dir=records_dir, model_dir=str(tmp_path / "run"),
                                  epochs=4, batch_size=8, learning_rate=1e-3, export=False,
                                  evaluate_test=False)
  results = train_lib.train_and_evaluate(config)
  with open(os.path.join(config.model_dir, "training_log.csv")) as f:
    losses = [float(row["loss"]) for row in csv.DictReader(f)]
  assert losses[-1] < losses[0]
  assert results["val"]["count"] > 0


def test_bad_flags_are_all_listed_before_any_work(tmp_path):
  result = run_module("fkd_tf.train", "--flagfile=configs/smoke.flags", "--epochs=-1",
                      "--batch_size=0", "--model=nope", "--flip_prob=3",
                      f"--model_dir={tmp_path / 'run'}")
  assert result.returncode != 0
  for fragment in ("--epochs=-1", "--batch_size=0", "--model='nope'", "flip_prob=3"):
    assert fragment in result.stderr
  assert not os.path.exists(tmp_path / "run" / "config.json")


def test_missing_flagfile_and_missing_data_are_named(tmp_path):
  result = run_module("fkd_tf.train", "--flagfile=configs/no_such.flags")
  assert result.returncode != 0 and "no_such.flags" in result.stderr
  result = run_module("fkd_tf.train", "--flagfile=configs/smoke.flags",
                      f"--tfrecord_dir={tmp_path / 'absent'}",
                      f"--model_dir={tmp_path / 'run'}")
  assert result.returncode != 0 and "absent" in result.stderr


def test_config_check_names_each_problem():
  config = config_lib.TrainConfig(tfrecord_dir="x", model_dir="y", loss="l7", epochs=0,
                                  learning_rate=0.0, batch_size=0)
  problems = "\n".join(config_lib.check(config))
  for name in ("--loss", "--epochs", "--learning_rate", "--batch_size"):
    assert name in problems
  assert config_lib.check(config_lib.TrainConfig(tfrecord_dir="x", model_dir="y")) == []
  with pytest.raises(ValueError, match="min_scale"):
    AugmentConfig(min_scale=2.0, max_scale=1.0)


def test_base_flags_are_the_original_recipe():
  lines = {l.split("=")[0]: l.strip().split("=", 1)[1]
           for l in open(os.path.join(os.path.dirname(__file__), os.pardir, "configs",
                                      "base.flags")) if l.startswith("--")}
  assert lines["--model"] == "ppbnet" and lines["--loss"] == "huber"
  assert float(lines["--learning_rate"]) == 1e-4 and lines["--batch_size"] == "64"
  assert lines["--epochs"] == "50" and lines["--normalisation"] == "original"
  assert float(lines["--rescale_size"]) == 100 and lines["--random_crop"] == "true"
  # What the original did beyond that (issue 15): whole-pixel framing, all 3462 training
  # faces, PyTorch's initial biases and Adam epsilon, the last epoch's network.
  assert lines["--original_rounding"] == "true" and lines["--train_splits"] == "train,val"
  assert lines["--bias_init"] == "torch" and float(lines["--adam_epsilon"]) == 1e-8
  assert lines["--keep"] == "last"
  assert records.FORMAT_VERSION == 1


def test_refining_stage_exports_a_cascade_evaluated_end_to_end(smoke_run, tfrecord_dir,
                                                                tmp_path):
  coarse_dir, _ = smoke_run
  model_dir = str(tmp_path / "refine")
  result = run_module("fkd_tf.train", "--flagfile=configs/smoke.flags",
                      f"--tfrecord_dir={tfrecord_dir}", f"--model_dir={model_dir}",
                      "--batch_size=8", "--epochs=2", "--model=fknet", "--region=keypoints",
                      "--rescale_size=90", "--random_crop=false", "--normalisation=centered",
                      "--loss=l1", f"--coarse_model_dir={coarse_dir}")
  assert result.returncode == 0, result.stderr[-3000:]
  assert "cascade test: 9 faces" in result.stdout
  results = json.load(open(os.path.join(model_dir, "results.json")))
  assert results["test"]["framing"] == "oracle box"
  assert results["cascade_test"]["framing"] == "cascade, whole image in"
  meta = json.load(open(os.path.join(results["export"], "assets.extra", "fkd_tf.json")))
  assert [s["model"] for s in meta["stages"]] == ["ppbnet", "fknet"]
  assert meta["stages"][1]["region_margin"] == 1.25
  # The export command composes runs; the refining stage may run twice.
  result = run_module("fkd_tf.export", f"--model_dirs={coarse_dir},{model_dir},{model_dir}",
                      f"--export_base={tmp_path / 'three'}", "--tfrecord_dir=")
  assert result.returncode == 0, result.stderr[-2000:]
  # The result, not TensorFlow's chatter (issue 18: 265 lines before, signatures, shards,
  # every captured variable of the LiteRT conversion).
  assert result.stdout.strip().splitlines() == [
      f"exported 3 stage(s): {tmp_path / 'three' / '1'}"]
  for chatter in ("signature_serialization", "Sharding callback", "fingerprint",
                  "Assets written", "Saved artifact", "TensorSpec"):
    assert chatter not in result.stdout + result.stderr, chatter
  meta = json.load(open(tmp_path / "three" / "1" / "assets.extra" / "fkd_tf.json"))
  assert [s["model"] for s in meta["stages"]] == ["ppbnet", "fknet", "fknet"]


def test_coarse_model_needs_a_refining_region(tmp_path):
  result = run_module("fkd_tf.train", "--flagfile=configs/smoke.flags",
                      f"--coarse_model_dir={tmp_path}", f"--model_dir={tmp_path / 'r'}")
  assert result.returncode != 0 and "--coarse_model_dir needs --region=keypoints" in (
      result.stderr)


def test_export_failures_are_one_line_naming_the_flag(smoke_run, tmp_path):
  """Row 11: a read-only export folder, a full disk, or no data/tfrecords where export
  runs (its default for the warm-up images): one line, or an export without warm-up."""
  import errno  # pylint: disable=g-import-not-at-top
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  from conftest import REPO  # pylint: disable=g-import-not-at-top
  from fkd_tf import export  # pylint: disable=g-import-not-at-top
  model_dir, _ = smoke_run
  env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2")
  # Outside a checkout: no data/tfrecords, so no warm-up requests, and one warning.
  result = subprocess.run([sys.executable, "-m", "fkd_tf.export", f"--model_dirs={model_dir}",
                           "--export_base=out"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-2000:]
  assert "no warm-up requests in the export: --tfrecord_dir=data/tfrecords" in result.stderr
  assert os.path.exists(tmp_path / "out" / "1" / "saved_model.pb")
  assert not os.path.exists(tmp_path / "out" / "1" / "assets.extra" / "tf_serving_warmup_requests")
  # A folder that cannot be written (/proc is read-only even for root).
  result = subprocess.run([sys.executable, "-m", "fkd_tf.export", f"--model_dirs={model_dir}",
                           "--export_base=/proc/fkd_export", "--tfrecord_dir="], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=600)
  assert result.returncode == 1
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith("error: --export_base=/proc/fkd_export: cannot write"), last
  assert "Traceback" not in result.stderr
  # A full disk, as the OSError a write raises then.
  full = OSError(errno.ENOSPC, "No space left on device", "out/.tmp-2-7/variables")
  assert export.os_error_line(full, "export_base", "out") == (
      "error: --export_base=out: cannot write: No space left on device "
      "(out/.tmp-2-7/variables); free some space or choose another folder")
