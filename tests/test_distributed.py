"""Two workers on 127.0.0.1 train with MultiWorkerMirroredStrategy."""

import pytest
import csv
import json
import os
import re
import socket
import subprocess
import sys

from conftest import REPO
from fkd_tf.training import distributed

# Trains, converts to LiteRT or runs commands in subprocesses: the slow tier.
pytestmark = pytest.mark.slow


def free_ports(count):
  sockets = [socket.socket() for _ in range(count)]
  for s in sockets:
    s.bind(("127.0.0.1", 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


def test_two_workers_end_with_identical_weights_and_a_falling_loss(tfrecord_dir, tmp_path):
  ports = free_ports(2)
  cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
  model_dir = str(tmp_path / "run")
  processes = []
  for index in range(2):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO,
               TF_CONFIG=json.dumps({"cluster": cluster,
                                     "task": {"type": "worker", "index": index}}))
    processes.append(subprocess.Popen(
        [sys.executable, "-m", "fkd_tf.train", "--flagfile=configs/smoke.flags",
         "--strategy=multi_worker", f"--tfrecord_dir={tfrecord_dir}",
         f"--model_dir={model_dir}", "--batch_size=8", "--epochs=4", "--learning_rate=1e-3",
         "--evaluate_test=false"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
  outputs = [p.communicate(timeout=600) for p in processes]
  for process, (out, err) in zip(processes, outputs):
    assert process.returncode == 0, err[-3000:]
  checksums = [re.search(r"final weights checksum: (\S+)", out).group(1)
               for out, _ in outputs]
  assert checksums[0] == checksums[1]
  with open(os.path.join(model_dir, "training_log.csv")) as f:
    losses = [float(row["loss"]) for row in csv.DictReader(f)]
  assert len(losses) == 4 and losses[-1] < losses[0]
  # The chief alone wrote the run folder; the other worker only its own backup.
  assert os.path.exists(os.path.join(model_dir, "export", "1", "saved_model.pb"))
  assert not os.path.exists(os.path.join(model_dir, "export", "2"))


def test_task_info_and_chief(monkeypatch):
  monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["a:1", "b:2"]},
                                              "task": {"type": "worker", "index": 1}}))
  assert distributed.task_info() == ("worker", 1, 2) and not distributed.is_chief()
  monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"chief": ["c:0"], "worker": ["a:1"]},
                                              "task": {"type": "worker", "index": 0}}))
  assert not distributed.is_chief()
  monkeypatch.delenv("TF_CONFIG")
  assert distributed.is_chief()
