r"""A run's training loss per epoch beside the original's and the PyTorch re-run's.

  python -m tools.plot_training_curve --model_dir=runs/base

Draws the per-epoch mean training loss of the run (its training_log.csv, column `loss`)
against the PyTorch original's own logged curve (the per-epoch means of `batch_loss` in
../shared/seed/ppb_fkdnet_weights.npz, 55 batches an epoch) and the original's recipe re-run
in PyTorch on this data set (../shared/seed/pytorch_rerun.json, two seeds), on a log scale,
as <model_dir>/training_curve.png and as an image in TensorBoard (<model_dir>/logs/
training_curve). Prints a table at epochs 1, 2, 5, 10, 20, 30, 40 and 50.

All three are the same quantity only for a run in the original's units: SmoothL1 (Huber,
delta 1) on (kp - 100) / 50 in the 90x90 frame, averaged over batches as Keras' epoch mean
and the original's per-batch log both are (configs/base.flags); the tool says when a run is
not.
"""

import csv
import json
import math
import os
import sys

from absl import app, flags
import numpy as np
from PIL import Image, ImageDraw

from fkd_tf.utils import io_utils
from fkd_tf.cli import command

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEED_DIR = os.path.join(REPO, os.pardir, "shared", "seed")
ORIGINAL_NPZ = os.path.join(SEED_DIR, "ppb_fkdnet_weights.npz")
RERUN_JSON = os.path.join(SEED_DIR, "pytorch_rerun.json")
# The original's DataLoader: 3462 faces in batches of 64, the last one of 6.
ORIGINAL_BATCHES_PER_EPOCH = 55
TABLE_EPOCHS = (1, 2, 5, 10, 20, 30, 40, 50)
PICTURE = "training_curve.png"

RUN_COLOUR = (30, 100, 220)
ORIGINAL_COLOUR = (220, 60, 40)
RERUN_COLOURS = ((40, 160, 60), (150, 60, 200))


def run_losses(model_dir):
  """{epoch (from 1): mean training loss} from a run's training_log.csv.

  A resumed run appends to the log; an epoch logged twice keeps its last row.
  Raises:
    ValueError naming the file (and line) when the log is missing, has no `loss` column or
    a value that is not a finite number.
  """
  path = os.path.join(model_dir, "training_log.csv")
  if not os.path.isfile(path):
    raise ValueError(f"{path} does not exist: {model_dir} has not finished an epoch")
  with open(path, newline="") as f:
    reader = csv.DictReader(f)
    if not reader.fieldnames or not {"epoch", "loss"} <= set(reader.fieldnames):
      raise ValueError(f"{path}: needs the columns 'epoch' and 'loss', has "
                       f"{reader.fieldnames}")
    losses = {}
    for line, row in enumerate(reader, start=2):
      try:
        epoch, loss = int(row["epoch"]) + 1, float(row["loss"])  # Keras counts from 0
      except (TypeError, ValueError):
        raise ValueError(f"{path}, line {line}: epoch {row['epoch']!r} or loss "
                         f"{row['loss']!r} is not a number") from None
      if not math.isfinite(loss):
        raise ValueError(f"{path}, line {line}: the loss of epoch {epoch} is {loss}")
      losses[epoch] = loss
  if not losses:
    raise ValueError(f"{path} logs no epoch yet")
  return dict(sorted(losses.items()))


def original_losses(npz_path, batches_per_epoch=ORIGINAL_BATCHES_PER_EPOCH):
  """{epoch: mean of that epoch's `batch_loss`} of the original's checkpoint file."""
  with np.load(npz_path) as npz:
    if "batch_loss" not in npz.files:
      raise ValueError(f"{npz_path} has no batch_loss array")
    batch_loss = npz["batch_loss"].astype(np.float64)
  if batch_loss.ndim != 1 or len(batch_loss) % batches_per_epoch:
    raise ValueError(f"{npz_path}: batch_loss of shape {batch_loss.shape} is not whole "
                     f"epochs of {batches_per_epoch} batches")
  means = batch_loss.reshape(-1, batches_per_epoch).mean(axis=1)
  return {epoch: float(loss) for epoch, loss in enumerate(means, start=1)}


def rerun_losses(json_path):
  """{"seed_0": {epoch: loss_mean}, ...} of the PyTorch re-run."""
  with open(json_path) as f:
    runs = json.load(f).get("runs")
  if not runs:
    raise ValueError(f"{json_path} has no 'runs'")
  return {seed: {int(row["epoch"]): float(row["loss_mean"]) for row in rows}
          for seed, rows in sorted(runs.items())}


def comparison_rows(run, original, reruns, epochs=TABLE_EPOCHS):
  """One dict per epoch: the three losses (None where a curve has no such epoch) and the
  run's ratio to the mean of the re-run's seeds."""
  rows = []
  for epoch in epochs:
    row = {"epoch": epoch, "fkd_tf": run.get(epoch), "original": original.get(epoch)}
    seeds = [curve.get(epoch) for curve in reruns.values()]
    row.update({f"rerun_{seed}": value for seed, value in zip(reruns, seeds)})
    rerun_mean = np.mean(seeds) if seeds and None not in seeds else None
    row["ratio_to_rerun"] = (row["fkd_tf"] / rerun_mean
                             if row["fkd_tf"] is not None and rerun_mean else None)
    rows.append(row)
  return rows


def format_table(rows):
  columns = list(rows[0])
  cell = lambda v: "-" if v is None else (f"{v:.5f}" if isinstance(v, float) else str(v))
  widths = [max(len(c), *(len(cell(r[c])) for r in rows)) for c in columns]
  lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths))]
  lines += ["  ".join(cell(r[c]).rjust(w) for c, w in zip(columns, widths)) for r in rows]
  return "\n".join(lines)


def _log_ticks(low, high):
  """1, 2, 5 x powers of ten between low and high (for a log axis)."""
  ticks = []
  for power in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1):
    ticks += [m * 10.0 ** power for m in (1, 2, 5) if low <= m * 10.0 ** power <= high]
  return ticks


def curve_plot(curves, title, size=(760, 480)):
  """Loss curves on a log y axis: {label: ({epoch: loss}, (r, g, b), line width)} -> PIL."""
  width, height = size
  left, right, top, bottom = 70, 20, 34, 50
  values = [v for points, _, _ in curves.values() for v in points.values()]
  last_epoch = max(e for points, _, _ in curves.values() for e in points)
  low, high = min(values) / 1.15, max(values) * 1.15
  to_x = lambda epoch: left + (width - left - right) * (epoch - 1) / max(1, last_epoch - 1)
  to_y = lambda loss: top + (height - top - bottom) * (
      math.log(high) - math.log(loss)) / (math.log(high) - math.log(low))
  picture = Image.new("RGB", size, "white")
  draw = ImageDraw.Draw(picture)
  draw.text((left, 10), title, fill="black")
  for tick in _log_ticks(low, high):
    draw.line([to_x(1), to_y(tick), to_x(last_epoch), to_y(tick)], fill=(225, 225, 225))
    draw.text((8, to_y(tick) - 6), f"{tick:g}", fill="black")
  step = 10 if last_epoch > 20 else (5 if last_epoch > 5 else 1)
  for epoch in sorted({1, *range(step, last_epoch + 1, step)}):
    draw.line([to_x(epoch), to_y(low), to_x(epoch), to_y(high)], fill=(225, 225, 225))
    draw.text((to_x(epoch) - 6, height - bottom + 6), str(epoch), fill="black")
  draw.rectangle([to_x(1), to_y(high), to_x(last_epoch), to_y(low)], outline="black")
  draw.text((width // 2 - 20, height - 22), "epoch", fill="black")
  draw.text((left + 6, top + 4), "mean training loss (log scale)", fill="black")
  for i, (label, (points, colour, line_width)) in enumerate(curves.items()):
    xy = [(to_x(e), to_y(v)) for e, v in sorted(points.items())]
    if len(xy) > 1:
      draw.line(xy, fill=colour, width=line_width)
    else:  # a run of one epoch: a dot, not an invisible line
      (x, y), = xy
      draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)
    legend_y = top + 6 + 16 * i
    draw.line([width - right - 250, legend_y + 6, width - right - 225, legend_y + 6],
              fill=colour, width=3)
    draw.text((width - right - 218, legend_y), label, fill=colour)
  return picture


def write_tensorboard_image(picture, model_dir, step):
  """The picture as an image summary in <model_dir>/logs/training_curve."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top  (only this needs TF)
  writer = tf.summary.create_file_writer(os.path.join(model_dir, "logs", "training_curve"))
  with writer.as_default():
    tf.summary.image("training_curve", np.asarray(picture.convert("RGB"))[np.newaxis],
                     step=step)
  writer.close()


def plot_training_curve(model_dir, original_npz=ORIGINAL_NPZ, rerun_json=RERUN_JSON,
                        output=None, tensorboard=True):
  """Draws and writes the comparison; returns (table rows, picture path)."""
  run = run_losses(model_dir)
  original = original_losses(original_npz)
  reruns = rerun_losses(rerun_json)
  name = os.path.basename(os.path.normpath(model_dir))
  curves = {f"fkd_tf ({name})": (run, RUN_COLOUR, 3),
            "original (its own log)": (original, ORIGINAL_COLOUR, 2)}
  for (seed, points), colour in zip(reruns.items(), RERUN_COLOURS * len(reruns)):
    curves[f"PyTorch re-run, {seed.replace('_', ' ')}"] = (points, colour, 1)
  picture = curve_plot(curves, f"{name}: training loss per epoch, SmoothL1 in the "
                               "original's units")
  output = output or os.path.join(model_dir, PICTURE)
  io_utils.save_png(picture, output)
  if tensorboard:
    write_tensorboard_image(picture, model_dir, step=max(run))
  return comparison_rows(run, original, reruns), output


def units_warning(model_dir):
  """A sentence when the run's loss is not in the original's units; None when it is."""
  # pylint: disable=g-import-not-at-top  (TensorFlow only when a run is read: a fast --help)
  from fkd_tf.serving import run_folder
  try:
    config = run_folder.read_config(model_dir)
  except run_folder.RunFolderError:
    return f"{model_dir} has no readable config.json: cannot tell the loss' units"
  if (config.loss, config.huber_delta, config.normalisation) != ("huber", 1.0, "original"):
    return (f"{model_dir} trains --loss={config.loss} (delta {config.huber_delta}) on "
            f"--normalisation={config.normalisation}: not the original's units, so the "
            "curves compare shapes only")
  return None


FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_string("model_dir", None, "Run folder with training_log.csv.")
  flags.DEFINE_string("original_npz", ORIGINAL_NPZ, "The original's checkpoint as numpy "
                      "arrays, with its per-batch training loss (batch_loss).")
  flags.DEFINE_string("rerun_json", RERUN_JSON, "The PyTorch re-run's per-epoch losses.")
  flags.DEFINE_string("output", None, f"PNG to write (default <model_dir>/{PICTURE}).")
  flags.DEFINE_bool("tensorboard", True, "Also write the picture to <model_dir>/logs.")
  flags.mark_flags_as_required(["model_dir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  try:
    rows, path = plot_training_curve(FLAGS.model_dir, FLAGS.original_npz, FLAGS.rerun_json,
                                     FLAGS.output, FLAGS.tensorboard)
  except (ValueError, OSError, KeyError) as e:
    sys.exit(f"error: {e}")
  warning = units_warning(FLAGS.model_dir)
  if warning:
    print(f"warning: {warning}")
  print(format_table(rows))
  print(f"wrote {path}")


def run():
  """The `fkd-plot-curve` console command."""
  command.run(main, define_flags)


if __name__ == "__main__":
  run()
