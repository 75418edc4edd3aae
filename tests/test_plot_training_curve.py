"""tools.plot_training_curve: a run's loss per epoch beside the original's and the re-run's."""

import json
import os

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from tools import plot_training_curve as plot


def _write_log(model_dir, losses, header="epoch,learning_rate,loss,val_loss,val_nme_io"):
  """A training_log.csv as Keras' CSVLogger writes it (epochs from 0)."""
  os.makedirs(model_dir, exist_ok=True)
  with open(os.path.join(model_dir, "training_log.csv"), "w") as f:
    f.write(header + "\n")
    for epoch, loss in losses:
      f.write(f"{epoch},0.0001,{loss},{2 * loss},0.3\n")


@pytest.fixture
def seed_files(tmp_path):
  """A synthetic original (50 epochs x 55 batches: epoch e's batches average 0.1 / e) and
  re-run (two seeds, 0.12 / e and 0.13 / e)."""
  rng = np.random.default_rng(0)
  noise = rng.uniform(-0.5, 0.5, (50, 55))
  noise -= noise.mean(axis=1, keepdims=True)  # each epoch's mean stays exact
  epoch_means = 0.1 / np.arange(1, 51)
  batch_loss = (epoch_means[:, np.newaxis] * (1 + noise)).reshape(-1)
  npz = str(tmp_path / "weights.npz")
  np.savez(npz, batch_loss=batch_loss, epoch=np.array(50))
  rerun = str(tmp_path / "rerun.json")
  with open(rerun, "w") as f:
    json.dump({"runs": {f"seed_{s}": [{"epoch": e, "loss_mean": scale / e}
                                      for e in range(1, 51)]
                        for s, scale in ((0, 0.12), (1, 0.13))}}, f)
  return npz, rerun


def test_losses_table_picture_and_tensorboard(tmp_path, seed_files):
  npz, rerun = seed_files
  model_dir = str(tmp_path / "run")
  # 20 epochs of 0.125 / e; epoch 4 logged twice (a run killed after logging it, resumed
  # from the epoch before): its last row counts.
  rows_in = [(e, 0.125 / (e + 1)) for e in range(20)]
  _write_log(model_dir, rows_in[:3] + [(3, 0.5)] + rows_in[3:])
  assert plot.run_losses(model_dir)[4] == pytest.approx(0.125 / 4)
  rows, path = plot.plot_training_curve(model_dir, npz, rerun)
  by_epoch = {row["epoch"]: row for row in rows}
  assert [row["epoch"] for row in rows] == [1, 2, 5, 10, 20, 30, 40, 50]
  assert by_epoch[10]["fkd_tf"] == pytest.approx(0.0125)
  assert by_epoch[10]["original"] == pytest.approx(0.01)
  assert by_epoch[10]["rerun_seed_1"] == pytest.approx(0.013)
  # fkd_tf 0.125 / e over the re-run's mean 0.125 / e.
  assert by_epoch[5]["ratio_to_rerun"] == pytest.approx(1.0)
  assert by_epoch[30]["fkd_tf"] is None and by_epoch[30]["ratio_to_rerun"] is None
  table = plot.format_table(rows)
  assert table.splitlines()[0].split() == ["epoch", "fkd_tf", "original", "rerun_seed_0",
                                           "rerun_seed_1", "ratio_to_rerun"]
  assert "0.01250" in table and " - " in table

  picture = np.asarray(Image.open(path).convert("RGB"))
  assert path == os.path.join(model_dir, "training_curve.png") and picture.shape[1] == 760
  for colour in (plot.RUN_COLOUR, plot.ORIGINAL_COLOUR, *plot.RERUN_COLOURS):
    assert (picture == colour).all(axis=-1).sum() > 50, colour  # each curve is drawn
  # The run's curve ends at epoch 20 of 50: nothing of its colour right of 2/5 of the plot.
  run_pixels = np.nonzero((picture == plot.RUN_COLOUR).all(axis=-1))[1]
  plot_span = 760 - 70 - 20
  assert np.percentile(run_pixels, 90) < 70 + plot_span * 19 / 49 + 5

  events = os.path.join(model_dir, "logs", "training_curve")
  [event_file] = os.listdir(events)
  tags = [(value.tag, event.step) for event in tf.compat.v1.train.summary_iterator(
      os.path.join(events, event_file)) for value in event.summary.value]
  assert tags == [("training_curve", 20)]


def test_seed_curves_are_the_originals(seed_files):
  real = plot.ORIGINAL_NPZ
  if not os.path.isfile(real):
    pytest.skip(f"{real} is absent")
  means = plot.original_losses(real)
  # ../shared/seed/README.md: epochs 1, 2, 10, 20, 30, 40, 50.
  expected = {1: 0.117, 2: 0.0117, 10: 0.0112, 20: 0.0086, 30: 0.0064, 40: 0.0054,
              50: 0.0049}
  for epoch, value in expected.items():
    assert means[epoch] == pytest.approx(value, rel=0.01), epoch
  reruns = plot.rerun_losses(plot.RERUN_JSON)
  assert sorted(reruns) == ["seed_0", "seed_1"] and len(reruns["seed_0"]) == 50
  assert reruns["seed_0"][1] == pytest.approx(0.111522)


def test_bad_inputs_are_named(tmp_path, seed_files):
  model_dir = str(tmp_path / "run")
  with pytest.raises(ValueError, match="training_log.csv does not exist"):
    plot.run_losses(model_dir)
  _write_log(model_dir, [(0, 0.1)], header="epoch,learning_rate,los,val_loss,val_nme_io")
  with pytest.raises(ValueError, match="needs the columns 'epoch' and 'loss'"):
    plot.run_losses(model_dir)
  _write_log(model_dir, [(0, 0.1), (1, "nan")])
  with pytest.raises(ValueError, match="line 3: the loss of epoch 2 is nan"):
    plot.run_losses(model_dir)
  npz = str(tmp_path / "short.npz")
  np.savez(npz, batch_loss=np.ones(100))
  with pytest.raises(ValueError, match=r"shape \(100,\) is not whole epochs of 55"):
    plot.original_losses(npz)


def test_units_warning_names_a_run_in_other_units(tmp_path):
  model_dir = tmp_path / "run"
  model_dir.mkdir()
  config = {"tfrecord_dir": "d", "model_dir": str(model_dir), "augment": {}}
  (model_dir / "config.json").write_text(json.dumps(config))
  assert plot.units_warning(str(model_dir)) is None  # the defaults are the original's
  (model_dir / "config.json").write_text(json.dumps(dict(config, loss="l1",
                                                         normalisation="centered")))
  assert "--loss=l1" in plot.units_warning(str(model_dir))
