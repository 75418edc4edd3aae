"""The training orchestrator in-process on the `tiny` network: no subprocess needed."""

import csv
import json
import os
import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from fkd_tf.serving import run_folder
from fkd_tf.core import config as config_lib
from fkd_tf.core.augment import AugmentConfig
from fkd_tf.data import pipeline
from fkd_tf.training import run_guard, train_lib
from test_hparams_log import read_hparams_events

# Trains, converts to LiteRT or runs commands in subprocesses: the slow tier.
pytestmark = pytest.mark.slow


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


def _torch_adam(gradients, learning_rate, epsilon, beta_1=0.9, beta_2=0.999):
  """PyTorch's Adam on one weight vector from 0, in numpy: epsilon after the correction."""
  value, m, v = np.zeros_like(gradients[0]), 0.0, 0.0
  for step, gradient in enumerate(gradients, start=1):
    m = beta_1 * m + (1 - beta_1) * gradient
    v = beta_2 * v + (1 - beta_2) * gradient ** 2
    m_hat, v_hat = m / (1 - beta_1 ** step), v / (1 - beta_2 ** step)
    value = value - learning_rate * m_hat / (np.sqrt(v_hat) + epsilon)
  return value


def _keras_adam(config, gradients):
  optimizer = train_lib.make_optimizer(config, steps_per_epoch=1)
  weight = tf.Variable(np.zeros_like(gradients[0]))
  for gradient in gradients:
    optimizer.apply([tf.constant(gradient)], [weight])
  return optimizer, weight.numpy()


def test_adam_epsilon_is_the_configs_and_steps_as_pytorchs():
  config = _config("d", "m", adam_epsilon=1e-8, learning_rate=1e-4)
  rng = np.random.default_rng(0)
  # Gradients of a trained network's size: Keras' epsilon placement moves each weight by
  # at most 2.2e-8 over 5 steps (measured), 0.02 % of one step of the learning rate.
  gradients = [rng.uniform(1e-3, 1e-1, 50) * rng.choice([-1, 1], 50) for _ in range(5)]
  optimizer, keras_value = _keras_adam(config, gradients)
  assert float(optimizer.epsilon) == 1e-8
  torch_value = _torch_adam(gradients, 1e-4, 1e-8)
  assert np.abs(torch_value).min() > 1e-6
  np.testing.assert_allclose(keras_value, torch_value, rtol=0, atol=4e-8)
  # Gradients near epsilon show where Keras adds it: before the correction, so at step 1
  # it acts as 1e-8 / sqrt(1 - 0.999) = 3.2e-7, i.e. as PyTorch's Adam with that epsilon.
  tiny = [np.full(4, 1e-7)]
  keras_tiny = _keras_adam(config, tiny)[1]
  np.testing.assert_allclose(keras_tiny, _torch_adam(tiny, 1e-4, 1e-8 / np.sqrt(1e-3)),
                             rtol=1e-4)
  # Its first step is then (1e-7 + 1e-8) / (1e-7 + 3.16e-7) = 0.264 of PyTorch's.
  assert abs(keras_tiny[0] / _torch_adam(tiny, 1e-4, 1e-8)[0] - 0.264) < 0.002


def test_training_on_train_and_val_keeps_the_last_epoch(tfrecord_dir, tmp_path):
  model_dir = str(tmp_path / "run")
  results = train_lib.train_and_evaluate(_config(
      tfrecord_dir, model_dir, epochs=2, train_splits="train,val", keep="last",
      export=False, evaluate_test=False))
  assert results["trained_on"] == ["train", "val"] and results["keep"] == "last"
  assert results["val"]["held_out"] is False
  kept = json.load(open(os.path.join(model_dir, "best.json")))
  with open(os.path.join(model_dir, "training_log.csv")) as f:
    last_row = list(csv.DictReader(f))[-1]
  # The kept network is the last epoch's, whatever its val NME; the end evaluation agrees.
  assert kept["epoch"] == 2
  assert abs(kept["val_nme_io"] - float(last_row["val_nme_io"])) < 1e-6
  assert abs(results["val"]["nme_io"] - kept["val_nme_io"]) < 1e-4


def _copy_tree_to(local_folder, remote_folder):
  for name in os.listdir(local_folder):
    tf.io.gfile.makedirs(remote_folder)
    tf.io.gfile.copy(os.path.join(local_folder, name), f"{remote_folder}/{name}")


def test_a_run_on_a_remote_file_system_stops_resumes_exports_and_loads(tfrecord_dir, capsys):
  # ram:// is TensorFlow's in-memory file system: what works there goes through
  # tf.io.gfile and works on gs:// too, where os and open() cannot reach.
  from fkd_tf.inference import api  # pylint: disable=g-import-not-at-top
  root = f"ram://run_{os.getpid()}_{id(capsys)}"
  remote_records, model_dir = f"{root}/tfrecords", f"{root}/run"
  _copy_tree_to(tfrecord_dir, remote_records)
  # A NaN at step 7 (epoch 3) stops the run; the backup of epoch 2 stays on ram://.
  with pytest.raises(FloatingPointError, match="resumes from epoch 3"):
    train_lib.train_and_evaluate(_config(remote_records, model_dir, debug_nan_at_step=7),
                                 allow_memory_folder=True)
  with tf.io.gfile.GFile(f"{model_dir}/backup/training_metadata.json") as f:
    assert json.load(f)["epoch"] == 2
  assert not tf.io.gfile.exists(f"{model_dir}/.lock")
  capsys.readouterr()
  results = train_lib.train_and_evaluate(_config(remote_records, model_dir),
                                         allow_memory_folder=True)
  out = capsys.readouterr().out
  assert "Epoch 3/3" in out and "Epoch 1/3" not in out  # resumed from the ram:// backup
  for name in ("config.json", "dataset_info.json", "best.json",
               "best.weights.h5", "training_log.csv", "results.json", "val_faces.png",
               "eval_val/metrics_val.json", "eval_test/per_image_test.csv", "logs/hparams"):
    assert tf.io.gfile.exists(f"{model_dir}/{name}"), name
  assert results["export"] == f"{model_dir}/export/1"
  assert [name for name in tf.io.gfile.listdir(model_dir) if name.startswith(".")] == []
  # The run folder and the export load back from ram://, on both API backends.
  network, config = run_folder.load_network(model_dir)
  assert config.model == "tiny" and network.count_params() > 0
  with tf.io.gfile.GFile(f"{model_dir}/val_faces.png", "rb") as f:
    picture = f.read()
  keypoints = {backend: api.load(results["export"], backend=backend).predict(picture)
               for backend in ("saved_model", "litert")}
  assert keypoints["saved_model"].shape == (1, 68, 2)
  np.testing.assert_allclose(keypoints["litert"], keypoints["saved_model"], atol=0.05)


def test_init_from_starts_from_a_finished_runs_network(tfrecord_dir, tmp_path, capsys):
  first = str(tmp_path / "first")
  train_lib.train_and_evaluate(_config(tfrecord_dir, first, epochs=2, export=False,
                                       evaluate_test=False))
  kept = json.load(open(os.path.join(first, "best.json")))["val_nme_io"]
  # With a learning rate too small to move it, the started network is the first run's.
  tiny_steps = dict(epochs=1, learning_rate=1e-12, export=False, evaluate_test=False)
  capsys.readouterr()
  started = train_lib.train_and_evaluate(_config(tfrecord_dir, str(tmp_path / "second"),
                                                 init_from=first, **tiny_steps))
  assert abs(started["val"]["nme_io"] - kept) < 1e-5
  fresh = train_lib.train_and_evaluate(_config(tfrecord_dir, str(tmp_path / "fresh"),
                                               **tiny_steps))
  assert abs(fresh["val"]["nme_io"] - kept) > 1e-3  # a fresh start is somewhere else
  # Another network, or a missing run, is refused before the new folder is written.
  for bad, message in ((dict(model="fknet"), "--model=tiny, this run with --model=fknet"),
                       (dict(init_from=str(tmp_path / "none")), "--init_from=.*none: ")):
    model_dir = str(tmp_path / f"bad_{len(message)}")
    with pytest.raises(run_folder.RunFolderError, match=message):
      train_lib.train_and_evaluate(_config(tfrecord_dir, model_dir, **{
          "init_from": first, **tiny_steps, **bad}))
    assert not os.path.exists(model_dir)


def _snapshot(folder):
  """{relative path: (size, mtime_ns, first bytes)} of every file under folder."""
  files = {}
  for root, _, names in os.walk(folder):
    for name in names:
      path = os.path.join(root, name)
      with open(path, "rb") as f:
        head = f.read(4096)
      files[os.path.relpath(path, folder)] = (os.path.getsize(path),
                                              os.stat(path).st_mtime_ns, head)
  return files


def test_a_finished_run_is_left_alone_and_more_epochs_continue_it(tfrecord_dir, tmp_path,
                                                                  capsys):
  model_dir = str(tmp_path / "run")
  settings = dict(epochs=2, evaluate_test=False)
  train_lib.train_and_evaluate(_config(tfrecord_dir, model_dir, **settings),
                               flags_text="--epochs=2\n")
  before = _snapshot(model_dir)
  assert "export/1/saved_model.pb" in before and "backup/training_metadata.json" in before
  # The same command again, even with another learning rate: refused, nothing touched.
  for again in (settings, dict(settings, learning_rate=1e-4)):
    with pytest.raises(run_guard.RunFinished,
                       match=rf"^{model_dir} is finished \(2/2 epochs\): nothing to do; raise "
                             "--epochs to continue or choose another --model_dir$"):
      train_lib.train_and_evaluate(_config(tfrecord_dir, model_dir, **again),
                                   flags_text="--epochs=2\n")
    assert _snapshot(model_dir) == before
  with pytest.raises(run_guard.RunFinished, match=r"finished \(2 epochs, --epochs=1 asks"):
    train_lib.train_and_evaluate(_config(tfrecord_dir, model_dir, epochs=1))
  assert _snapshot(model_dir) == before
  # More epochs continue after the last one: one more epoch trained, logged and exported.
  capsys.readouterr()
  results = train_lib.train_and_evaluate(_config(tfrecord_dir, model_dir, epochs=3,
                                                 evaluate_test=False))
  out = capsys.readouterr().out
  assert "Epoch 3/3" in out and "Epoch 1/3" not in out and "Epoch 2/3" not in out
  with open(os.path.join(model_dir, "training_log.csv")) as f:
    assert [row["epoch"] for row in csv.DictReader(f)] == ["0", "1", "2"]
  assert results["epochs"] == 3 and results["export"] == os.path.join(model_dir, "export", "2")
  # Killed after its last epoch, before results.json: a rerun trains nothing, only finishes.
  os.remove(os.path.join(model_dir, run_guard.RESULTS))
  capsys.readouterr()
  results = train_lib.train_and_evaluate(_config(tfrecord_dir, model_dir, epochs=3,
                                                 evaluate_test=False, export=False))
  assert "Epoch " not in capsys.readouterr().out and results["epochs"] == 3
  with open(os.path.join(model_dir, "training_log.csv")) as f:
    assert len(list(csv.DictReader(f))) == 3


def test_a_damaged_init_from_is_refused_by_name_before_anything_is_written(tfrecord_dir,
                                                                           tmp_path):
  source, rerun = str(tmp_path / "source"), str(tmp_path / "rerun")
  train_lib.train_and_evaluate(_config(tfrecord_dir, source, epochs=1, export=False,
                                       evaluate_test=False), flags_text="--epochs=1\n")
  shutil.copytree(source, rerun)  # a finished run, to be rerun from a damaged source
  weights = os.path.join(source, run_folder.BEST_WEIGHTS)
  with open(weights, "r+b") as f:
    f.truncate(os.path.getsize(weights) // 2)  # a copy that stopped half way
  kept = {name: open(os.path.join(rerun, name)).read() for name in ("config.json",
                                                                    "flags.txt")}
  for model_dir in (rerun, str(tmp_path / "new")):
    with pytest.raises(run_folder.RunFolderError,
                       match=rf"^--init_from={source}: {weights} is not a readable weights "
                             "file, truncated or damaged"):
      train_lib.train_and_evaluate(_config(tfrecord_dir, model_dir, init_from=source,
                                           epochs=4, learning_rate=1e-4),
                                   flags_text="--epochs=4\n--learning_rate=0.0001\n")
  assert {name: open(os.path.join(rerun, name)).read() for name in kept} == kept
  assert not os.path.exists(str(tmp_path / "new"))


def test_a_model_dir_in_memory_is_refused(tfrecord_dir):
  model_dir = f"ram://vanishing_{os.getpid()}/run"
  with pytest.raises(run_folder.RunFolderError,
                     match=rf"^--model_dir={model_dir} is in memory \(ram://\): the run and its "
                           "export would vanish when training ends"):
    train_lib.train_and_evaluate(_config(tfrecord_dir, model_dir))
  assert not tf.io.gfile.exists(model_dir)
