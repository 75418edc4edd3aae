"""The training orchestrator in-process on the `tiny` network: no subprocess needed."""

import json
import os

import numpy as np
import tensorflow as tf

from fkd_tf import run_folder
from fkd_tf.core import config as config_lib
from fkd_tf.core.augment import AugmentConfig
from fkd_tf.data import pipeline
from fkd_tf.training import train_lib


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
