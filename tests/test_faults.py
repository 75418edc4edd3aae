"""Fault injection: a killed run resumes, a NaN loss stops cleanly and keeps its resume
point, an impossible run folder is one line of error."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import REPO, run_module

# Trains, converts to LiteRT or runs commands in subprocesses: the slow tier.
pytestmark = pytest.mark.slow

EPOCHS = 8


def _command(tfrecord_dir, model_dir, *extra):
  return [sys.executable, "-m", "fkd_tf.train", "--flagfile=configs/smoke.flags",
          f"--tfrecord_dir={tfrecord_dir}", f"--model_dir={model_dir}", "--batch_size=8",
          f"--epochs={EPOCHS}", "--learning_rate=1e-3", "--export=false",
          "--evaluate_test=false", *extra]


def _log(model_dir):
  path = os.path.join(model_dir, "training_log.csv")
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return list(csv.DictReader(f))


def test_killed_run_resumes_from_last_completed_epoch(tfrecord_dir, tmp_path):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO)
  killed_dir = str(tmp_path / "killed")
  process = subprocess.Popen(_command(tfrecord_dir, killed_dir), cwd=REPO, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  deadline = time.time() + 300
  while len(_log(killed_dir)) < 2 and time.time() < deadline and process.poll() is None:
    time.sleep(0.05)
  process.send_signal(signal.SIGKILL)
  process.wait()
  assert process.returncode == -signal.SIGKILL
  done_before = len(_log(killed_dir))
  assert 2 <= done_before < EPOCHS, "the run was not killed mid-way"

  resumed = subprocess.run(_command(tfrecord_dir, killed_dir), cwd=REPO, env=env,
                           capture_output=True, text=True)
  assert resumed.returncode == 0, resumed.stderr[-2000:]
  # The killed process could not remove its lock; the rerun sees it died and takes over.
  assert f"taking over the lock of process {process.pid}" in resumed.stderr
  epochs = [int(row["epoch"]) for row in _log(killed_dir)]
  # Every epoch once; the resumed process started after the last backed-up epoch.
  assert sorted(set(epochs)) == list(range(EPOCHS))
  assert f"Epoch {done_before + 1}/{EPOCHS}" in resumed.stdout
  assert "Epoch 1/" not in resumed.stdout

  clean_dir = str(tmp_path / "clean")
  clean = subprocess.run(_command(tfrecord_dir, clean_dir), cwd=REPO, env=env,
                         capture_output=True, text=True)
  assert clean.returncode == 0, clean.stderr[-2000:]
  final = lambda d: float(_log(d)[-1]["val_loss"])
  # BackupAndRestore restores weights, optimizer and the augmentation seed but not the
  # data iterator's shuffle position, so the runs differ a little, not in kind.
  assert abs(final(killed_dir) - final(clean_dir)) <= 0.25 * final(clean_dir)


def test_nan_loss_stops_with_the_step_and_keeps_good_outputs(tfrecord_dir, tmp_path):
  model_dir = str(tmp_path / "nan")
  # Step 7 is in epoch 3 (3 steps an epoch): epochs 1-2 leave good weights behind.
  result = run_module("fkd_tf.train", *_command(tfrecord_dir, model_dir, "--export=true",
                                                "--debug_nan_at_step=7")[3:])
  assert result.returncode != 0
  assert "epoch 3, batch 2 (optimizer step 8)" in result.stderr
  best = os.path.join(model_dir, "best.weights.h5")
  assert os.path.exists(best)
  assert not os.path.exists(os.path.join(model_dir, "export"))
  rows = _log(model_dir)
  assert all(np.isfinite(float(r["val_loss"])) for r in rows[:2])
  # What the message says was kept, was: the resume point of the last good epoch.
  assert "The backup of epoch 2 in " in result.stderr
  assert "rerunning the same command resumes from epoch 3" in result.stderr
  with open(os.path.join(model_dir, "backup", "training_metadata.json")) as f:
    assert json.load(f)["epoch"] == 2
  # flags.txt holds this project's flags, not absl's or TensorFlow's internals.
  with open(os.path.join(model_dir, "flags.txt")) as f:
    lines = f.read().splitlines()
  for line in ("--model=ppbnet", f"--epochs={EPOCHS}", "--debug_nan_at_step=7",
               f"--tfrecord_dir={tfrecord_dir}", "--export", "--random_crop"):
    assert line in lines
  assert len(lines) == len(set(lines)) and all(line.startswith("--") for line in lines)
  internals = ("--logtostderr", "--verbosity", "--flagfile", "--undefok", "--test_",
               "--xla", "--op_conversion_fallback_to_while_loop", "--pdb")
  assert [l for l in lines if l.startswith(internals)] == []


def test_an_impossible_model_dir_is_one_line_of_error(tfrecord_dir, tmp_path):
  a_file = tmp_path / "notes.txt"
  a_file.write_text("not a folder")
  result = run_module("fkd_tf.train", *_command(tfrecord_dir, str(a_file / "run"))[3:])
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1] == (
      f"error: --model_dir {a_file / 'run'} cannot be created: Not a directory")
  assert "Traceback" not in result.stderr


SLOW_CONVERT = r"""
import sys, time
import tensorflow as tf
from fkd_tf.data import convert

real_writer = tf.io.TFRecordWriter
class SlowWriter(real_writer):
  def write(self, record):
    time.sleep(0.05)
    super().write(record)
convert.tf.io.TFRecordWriter = SlowWriter
convert.convert(sys.argv[1], sys.argv[2], val_fraction=0.2, examples_per_shard=2)
"""


def test_killed_converter_leaves_no_incomplete_shard_and_a_rerun_completes(raw_dir, tmp_path):
  from fkd_tf.data import convert  # pylint: disable=g-import-not-at-top
  output = str(tmp_path / "records")
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO)
  process = subprocess.Popen([sys.executable, "-c", SLOW_CONVERT, raw_dir, output], env=env,
                             stderr=subprocess.DEVNULL)
  partial = lambda: [n for n in os.listdir(tmp_path) if ".partial-" in n]
  deadline = time.time() + 120
  while time.time() < deadline and process.poll() is None:
    written = [f for p in partial() for f in os.listdir(tmp_path / p)]
    if len(written) >= 3:
      break
    time.sleep(0.02)
  process.send_signal(signal.SIGKILL)
  process.wait()
  assert process.returncode == -signal.SIGKILL, "the converter finished before the kill"
  assert not os.path.exists(output)  # nothing under the final name
  assert partial()  # what the killed run left is hidden under its temporary name
  convert.convert(raw_dir, output, val_fraction=0.2, examples_per_shard=2)
  assert not partial()  # the rerun cleared the dead run's leftovers
  from fkd_tf.data import records  # pylint: disable=g-import-not-at-top
  info = records.read_dataset_info(output)
  assert sum(s["count"] for s in info["splits"].values()) == 39
