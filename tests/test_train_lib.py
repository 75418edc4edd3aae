"""The training orchestrator in-process on the `tiny` network: no subprocess needed."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from fkd_tf import run_folder
from fkd_tf.core import config as config_lib
from fkd_tf.core.augment import AugmentConfig
from fkd_tf.data import pipeline
from fkd_tf.training import run_guard, train_lib
from test_hparams_log import read_hparams_events


def _config(tfrecord_dir, model_dir, **overrides):
  values = dict(tfrecord_dir=tfrecord_dir, model_dir=model_dir, model="tiny",
                normalisation="centered", loss="l1", epochs=3, batch_size=8,
                learning_rate=3e-3, augment=AugmentConfig(rescale_size=90.0,
                                                          random_crop=False))
  values.update(overrides)
  return config_lib.TrainConfig(**values)


def test_train_and_evaluate_writes_a_loadable_run(tfrecord_dir, tmp_path):
  model_dir = str(tmp_path / "run")
  results = train_lib.train_and_evaluate(_config(tfrecord_dir, model_dir))
  assert set(results) >= {"val", "test", "export"}
  best = json.load(open(os.path.join(model_dir, "best.json")))
  assert 1 <= best["epoch"] <= 3 and np.isfinite(best["val_nme_io"])
  # The run folder reads back without training code, to the same network.
  network, config = run_folder.load_network(model_dir)
  assert config.model == "tiny" and config.epochs == 3
  batch = next(iter(pipeline.make_dataset(tfrecord_dir, "val", 4, training=False)))
  images = tf.image.resize(tf.cast(batch["image"], tf.float32) / 255.0, [90, 90])
  reloaded = run_folder.load_network(model_dir)[0](images).numpy()
  np.testing.assert_allclose(network(images).numpy(), reloaded, atol=1e-6)
  # The best epoch's validation NME is the one the evaluation at the end reports.
  assert abs(results["val"]["nme_io"] - best["val_nme_io"]) < 1e-4
  # TensorBoard's HParams tab gets the settings and the final metrics.
  hparams, _, scalars = read_hparams_events(model_dir)
  assert hparams["model"] == "tiny" and hparams["augment.rescale_size"] == 90.0
  assert scalars["final/test_auc_10"] == pytest.approx(results["test"]["auc_10"])
  assert not os.path.exists(os.path.join(model_dir, ".lock"))  # released at the end


def test_a_rerun_never_replaces_a_better_best_checkpoint(tfrecord_dir, tmp_path):
  model_dir = str(tmp_path / "run")
  train_lib.train_and_evaluate(_config(tfrecord_dir, model_dir, epochs=2, export=False,
                                       evaluate_test=False))
  best = json.load(open(os.path.join(model_dir, "best.json")))
  weights = os.path.getmtime(os.path.join(model_dir, run_folder.BEST_WEIGHTS))
  # Pretend the best so far was unbeatable: a resumed epoch must not replace it.
  json.dump({"epoch": best["epoch"], "val_nme_io": 0.0},
            open(os.path.join(model_dir, "best.json"), "w"))
  train_lib.train_and_evaluate(_config(tfrecord_dir, model_dir, epochs=3, export=False,
                                       evaluate_test=False))
  assert os.path.getmtime(os.path.join(model_dir, run_folder.BEST_WEIGHTS)) == weights
  assert json.load(open(os.path.join(model_dir, "best.json")))["val_nme_io"] == 0.0


def test_a_nan_stop_keeps_the_backup_and_a_rerun_resumes_after_it(tfrecord_dir, tmp_path,
                                                                  capsys):
  model_dir = str(tmp_path / "run")
  # 24 training faces in batches of 8: 3 steps an epoch, so step 7 is in epoch 3.
  with pytest.raises(FloatingPointError) as raised:
    train_lib.train_and_evaluate(_config(tfrecord_dir, model_dir, epochs=3, export=False,
                                         evaluate_test=False, debug_nan_at_step=7))
  message = str(raised.value)
  assert "at epoch 3, batch 2 (optimizer step 8)" in message
  assert (f"The backup of epoch 2 in {model_dir}/backup is kept: rerunning the same command "
          "resumes from epoch 3") in message
  with open(os.path.join(model_dir, "backup", "training_metadata.json")) as f:
    assert json.load(f)["epoch"] == 2
  best = json.load(open(os.path.join(model_dir, "best.json")))
  assert best["epoch"] <= 2 and f"epoch {best['epoch']})" in message
  capsys.readouterr()
  train_lib.train_and_evaluate(_config(tfrecord_dir, model_dir, epochs=3, export=False,
                                       evaluate_test=False))
  out = capsys.readouterr().out
  assert "Epoch 3/3" in out and "Epoch 1/3" not in out and "Epoch 2/3" not in out


def test_a_rerun_with_other_weight_settings_is_refused_before_writing(tfrecord_dir, tmp_path):
  model_dir = str(tmp_path / "run")
  os.makedirs(model_dir)
  config_path = os.path.join(model_dir, "config.json")
  with open(config_path, "w") as f:
    json.dump(train_lib.config_to_json(_config(tfrecord_dir, model_dir)), f)
  before = open(config_path).read()
  with pytest.raises(run_guard.RunFolderMismatch,
                     match=f"^{model_dir} holds a run made with other settings.*--model: "
                           "'tiny' there, 'fknet' now"):
    train_lib.train_and_evaluate(_config(tfrecord_dir, model_dir, model="fknet"),
                                 flags_text="--model=fknet\n")
  assert open(config_path).read() == before
  assert sorted(os.listdir(model_dir)) == ["config.json"]  # no flags.txt, no lock left


def test_a_run_folder_in_use_is_refused_before_writing(tfrecord_dir, tmp_path):
  model_dir = str(tmp_path / "run")
  os.makedirs(model_dir)
  other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
  try:
    with open(os.path.join(model_dir, ".lock"), "w") as f:
      json.dump({"pid": other.pid, "host": socket.gethostname(), "since": "today"}, f)
    with pytest.raises(run_guard.RunFolderBusy,
                       match=f"^{model_dir} is in use by another training: process "
                             f"{other.pid}, since today"):
      train_lib.train_and_evaluate(_config(tfrecord_dir, model_dir))
    assert sorted(os.listdir(model_dir)) == [".lock"]
  finally:
    other.kill()
    other.wait()
