"""Evaluates keypoints in original image pixels: NME, failure rate, AUC, curves.

`evaluate_split(predict_fn, ...)` with `network_predictor` (a Keras network) or
`saved_model_predictor` (an export; the served graph, decoding included). The command
line is `fkd_tf.evaluate`.
"""

import os

import numpy as np
import pandas as pd
import tensorflow as tf

from fkd_tf.inference import visualize
from fkd_tf.utils import io_utils
from fkd_tf.core import framing, geometry, losses, metrics
from fkd_tf.core.keypoints import REGIONS
from fkd_tf.data import pipeline
from fkd_tf.serving import versions

# The original's reporting frame: shorter side rescaled to 100, centre 90x90 crop, and
# keypoints (kp - 100) / 50; its training loss (~0.0025) is in these units.
ORIGINAL_RESCALE = 100.0


def network_predictor(network, net_framing):
  """Batch dict -> keypoints_px [N, 68, 2] numpy, through a Keras network.

  net_framing: the network's `framing.Framing`.
  A refining stage (a region_margin) is framed around the *true*
  keypoints here: an oracle box, for choosing that stage; the cascade's own numbers come
  from its SavedModel.
  """
  @tf.function(input_signature=[tf.TensorSpec([None, None, None, 1], tf.uint8),
                                tf.TensorSpec([None, 2], tf.int32),
                                tf.TensorSpec([None, 68, 2], tf.float32)])
  def predict(images, image_size, keypoints_px):
    regions = net_framing.regions(image_size, keypoints_px)
    predicted, _, _ = net_framing.predict_keypoints_px(network, images, regions)
    return predicted

  return lambda batch: predict(batch["image"], batch["image_size"],
                               batch["keypoints_px"]).numpy()


def saved_model_predictor(saved_model_dir):
  """Batch dict (with "image_bytes") -> keypoints_px numpy, through serving_default."""
  serve = versions.load_saved_model(saved_model_dir).signatures["serving_default"]
  return lambda batch: serve(image_bytes=batch["image_bytes"])["keypoints"].numpy()


def original_units_loss(pred_px, true_px, image_size):
  """SmoothL1 (Huber, delta 1) in the original's units: (kp_net - 100) / 50, centre crop."""
  image_size = tf.constant(image_size, tf.int32)
  net_from_image = geometry.frame_matrix(
      framing.whole_image_regions(image_size), tf.fill([len(pred_px), 2], 0.5),
      ORIGINAL_RESCALE)
  norm = lambda kp: framing.normalise(
      geometry.transform_points(net_from_image, tf.constant(kp, tf.float32)), "original")
  return float(losses.huber(1.0)(norm(true_px), norm(pred_px)))


def summarise(pred_px, true_px, image_size):
  """Headline metrics of predictions [N, 68, 2] against the truth, original pixels."""
  pred = tf.constant(pred_px, tf.float32)
  true = tf.constant(true_px, tf.float32)
  nme_io = metrics.nme(pred, true).numpy()
  point_errors = metrics.point_errors(pred, true).numpy()
  return {
      "count": int(len(nme_io)),
      "nme_io": float(nme_io.mean()),
      "nme_box": float(metrics.nme(pred, true, "box").numpy().mean()),
      "failure_rate_10": metrics.failure_rate(nme_io),
      "auc_10": metrics.auc(nme_io),
      "mean_error_px": float(point_errors.mean()),
      "smoothl1_original_units": original_units_loss(pred_px, true_px, image_size),
      "nme_io_by_region": region_table(pred_px, true_px)["nme_io"].to_dict(),
  }


def region_table(pred_px, true_px):
  """Error by face part, one row per region of `REGIONS` (jaw, brows, nose, eyes, mouth).

  Columns: nme_io (the region's mean point error / inter-ocular distance, averaged over
  faces), mean_error_px, points. Index: region.
  """
  point_errors = metrics.point_errors(pred_px, true_px).numpy()
  inter_ocular = metrics.inter_ocular(tf.constant(true_px, tf.float32)).numpy()
  rows = []
  for name, idx in REGIONS.items():
    region_px = point_errors[:, list(idx)].mean(axis=1)
    rows.append({"region": name, "nme_io": float((region_px / inter_ocular).mean()),
                 "mean_error_px": float(region_px.mean()), "points": len(idx)})
  return pd.DataFrame(rows).set_index("region")


def collect(dataset, predict_fn):
  """Runs predict_fn over a dataset with names; returns stacked numpy arrays."""
  names, preds, truths, sizes = [], [], [], []
  # make_dataset asserts its cardinality from dataset_info's counts, so the bar has a
  # total ("3/13"), not "3/Unknown"; a dataset of unknown length still gets a bar.
  batches = int(dataset.cardinality())
  progress = io_utils.progress_bar(batches if batches >= 0 else None, "batch")
  for batch in dataset:
    preds.append(predict_fn(batch))
    truths.append(batch["keypoints_px"].numpy())
    sizes.append(batch["image_size"].numpy())
    names.extend(n.decode() for n in batch["file_name"].numpy())
    progress.add(1)
  return {"file_name": names, "pred_px": np.concatenate(preds),
          "true_px": np.concatenate(truths), "image_size": np.concatenate(sizes)}


def per_image_table(results):
  """One row per face: file_name, nme_io, nme_box, mean_error_px (a DataFrame)."""
  pred = tf.constant(results["pred_px"])
  true = tf.constant(results["true_px"])
  return pd.DataFrame({
      "file_name": list(results["file_name"]),
      "nme_io": metrics.nme(pred, true).numpy().astype(np.float64),
      "nme_box": metrics.nme(pred, true, "box").numpy().astype(np.float64),
      "mean_error_px": metrics.point_errors(pred, true).numpy().mean(axis=1)
                       .astype(np.float64),
  })


def per_image_rows(results):
  """`per_image_table` as a list of dicts, one per face."""
  return per_image_table(results).to_dict("records")


def write_table(table, path, index=False):
  """A DataFrame as CSV, written atomically."""
  io_utils.write_text(path, table.to_csv(index=index))


def write_report(output_dir, split, results, label="model", extra=None):
  """Writes metrics JSON, per-image and per-region CSVs and the cumulative error curve PNG.

  Returns:
    The metrics dict (also in <output_dir>/metrics_<split>.json).
  """
  summary = summarise(results["pred_px"], results["true_px"], results["image_size"])
  summary.update({"split": split, **(extra or {})})
  per_image = per_image_table(results)
  write_table(per_image, os.path.join(output_dir, f"per_image_{split}.csv"))
  write_table(region_table(results["pred_px"], results["true_px"]),
              os.path.join(output_dir, f"per_region_{split}.csv"), index=True)
  curve = visualize.cumulative_error_plot({label: per_image["nme_io"].to_numpy()})
  io_utils.save_png(curve, os.path.join(output_dir, f"ced_{split}.png"))
  io_utils.write_json(os.path.join(output_dir, f"metrics_{split}.json"), summary)
  return summary


def format_summary(summary):
  return (f"{summary['split']}: {summary['count']} faces  NME_io {100 * summary['nme_io']:.2f}%"
          f"  NME_box {100 * summary['nme_box']:.2f}%"
          f"  FR@10 {100 * summary['failure_rate_10']:.1f}%  AUC@10 {summary['auc_10']:.3f}"
          f"  mean error {summary['mean_error_px']:.2f} px"
          f"  SmoothL1 (original units) {summary['smoothl1_original_units']:.4f}")


def evaluate_split(predict_fn, tfrecord_dir, split, output_dir, batch_size=64, label="model",
                   with_bytes=False, extra=None):
  """Predicts a whole split and writes its report; returns the metrics dict."""
  dataset = pipeline.make_dataset(tfrecord_dir, split, batch_size, training=False,
                                        with_names=True, with_bytes=with_bytes, cache=False)
  results = collect(dataset, predict_fn)
  return write_report(output_dir, split, results, label=label, extra=extra)
