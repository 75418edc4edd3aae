"""Looks inside a trained network: first-layer filters, their feature maps, worst faces.

`inspect_run(...)` writes into its output_dir (default <model_dir>/inspect): filters.png, feature_maps.png,
filters.txt (each kernel measured and classed as edge, blur or other), worst_faces.png,
worst_faces.csv and region_errors.png; the same pictures go to TensorBoard under
<model_dir>/logs/inspect. The command line is `fkd_tf.inspect`.
"""

import csv
import io
import os

import numpy as np
from PIL import Image, ImageDraw
import tensorflow as tf

from fkd_tf.evaluation import reports
from fkd_tf.inference import visualize
from fkd_tf.utils import io_utils
from fkd_tf.core import framing
from fkd_tf.data import decode, pipeline

# A kernel whose weights nearly cancel (|sum| under this share of sum |w|) and that has
# real mass of both signs responds to changes, not to brightness: an edge detector.
EDGE_MAX_SUM_RATIO = 0.3
EDGE_MIN_MINORITY_SHARE = 0.25
# A blur has (almost) one sign and its centre at least as strong as the average tap.
BLUR_MIN_SIGN_SHARE = 0.9


def first_conv_kernels(network):
  """The first convolution's kernels [k, k, 1, C] and its layer name."""
  for layer in network.layers:
    if isinstance(layer, tf.keras.layers.Conv2D) and layer.kernel.shape[2] == 1:
      return np.asarray(layer.kernel.numpy(), np.float32), layer.name
  raise ValueError(f"{network.name} has no convolution on the gray input")


def saved_model_first_conv(saved_model):
  """The first stage's first convolution kernels [k, k, 1, C] read from an export."""
  reader = tf.train.load_checkpoint(os.path.join(saved_model, "variables", "variables"))
  candidates = []
  for name, shape in reader.get_variable_to_shape_map().items():
    parts = name.split("/")
    # The first network's weights, in its layers' order: network_weights/0/<index>/...
    if len(shape) == 4 and shape[2] == 1 and name.startswith("network_weights/0/"):
      candidates.append((int(parts[2]), name))
  if not candidates:
    raise ValueError(f"{saved_model} holds no convolution on a gray input")
  _, name = min(candidates)
  return np.asarray(reader.get_tensor(name), np.float32), name


def classify_kernel(kernel):
  """Measures a [k, k] kernel; returns a dict with its 'kind' (edge, blur or other)."""
  kernel = np.asarray(kernel, np.float64)
  total, magnitude = kernel.sum(), np.abs(kernel).sum() + 1e-12
  positive = kernel[kernel > 0].sum() / magnitude
  minority = min(positive, 1.0 - positive)
  centre = np.abs(kernel[kernel.shape[0] // 2, kernel.shape[1] // 2])
  ys, xs = np.mgrid[0:kernel.shape[0], 0:kernel.shape[1]]
  # Orientation of the gradient it measures: correlation with x and y ramps.
  gx = (kernel * (xs - xs.mean())).sum()
  gy = (kernel * (ys - ys.mean())).sum()
  if abs(total) / magnitude < EDGE_MAX_SUM_RATIO and minority >= EDGE_MIN_MINORITY_SHARE:
    kind = "edge"
  elif max(positive, 1.0 - positive) >= BLUR_MIN_SIGN_SHARE and (
      centre >= np.abs(kernel).mean()):
    kind = "blur"
  else:
    kind = "other"
  return {"kind": kind, "sum_ratio": float(total / magnitude),
          "positive_share": float(positive), "centre_share": float(centre / magnitude),
          "gradient_angle_deg": float(np.degrees(np.arctan2(gy, gx))),
          "photo_negative": bool(total < 0)}


def _normalise(array):
  low, high = array.min(), array.max()
  return (array - low) / (high - low) if high > low else np.zeros_like(array)


def kernel_tiles(kernels, tile=48):
  """One labelled PIL tile per kernel of [k, k, 1, C] (each normalised for display)."""
  tiles = []
  for index in range(kernels.shape[-1]):
    pixels = (_normalise(kernels[:, :, 0, index]) * 255).astype(np.uint8)
    picture = Image.fromarray(pixels).resize((tile, tile), Image.NEAREST).convert("RGB")
    framed = Image.new("RGB", (tile + 4, tile + 16), "white")
    framed.paste(picture, (2, 14))
    ImageDraw.Draw(framed).text((2, 1), str(index), fill="black")
    tiles.append(framed)
  return tiles


def feature_maps(image_net, kernels):
  """The first layer's responses (no bias, no activation): [90, 90, 1] -> [H', W', C]."""
  return tf.nn.conv2d(tf.constant(image_net[np.newaxis], tf.float32), kernels, 1,
                      "VALID").numpy()[0]


def feature_map_sheet(image_net, maps, tile=96):
  pictures = [Image.fromarray((image_net[..., 0] * 255).astype(np.uint8)).resize(
      (tile, tile)).convert("RGB")]
  for index in range(maps.shape[-1]):
    pixels = (_normalise(maps[..., index]) * 255).astype(np.uint8)
    pictures.append(Image.fromarray(pixels).resize((tile, tile)).convert("RGB"))
  return visualize.tile(pictures, columns=8, background=(255, 255, 255))


def worst_faces(rows, count):
  """The `count` rows with the largest NME_io, worst first."""
  return sorted(rows, key=lambda r: r["nme_io"], reverse=True)[:count]


def summary_lines(kernel_info):
  counts = {kind: sum(1 for k in kernel_info if k["kind"] == kind)
            for kind in ("edge", "blur", "other")}
  negative = sum(1 for k in kernel_info if k["photo_negative"])
  lines = [f"{len(kernel_info)} kernels: {counts['edge']} edge, {counts['blur']} blur, "
           f"{counts['other']} other; {negative} with a negative sum (photo-negative response)",
           "index kind  sum/|w|  positive_share centre_share gradient_angle_deg"]
  lines += [f"{i:5d} {k['kind']:5s} {k['sum_ratio']:+.2f}    {k['positive_share']:.2f}"
            f"           {k['centre_share']:.2f}         {k['gradient_angle_deg']:+.0f}"
            for i, k in enumerate(kernel_info)]
  return lines, counts


def inspect_run(kernels, layer_name, rescale_size, predict_fn, tfrecord_dir, output_dir,
                image_bytes=None, worst=12, log_dir=None, split="test", with_bytes=False):
  """Writes every picture and table; returns (kernel counts, worst rows).

  Args:
    kernels: [k, k, 1, C] first-layer kernels; rescale_size: the first stage's framing.
    predict_fn: batch -> keypoints_px (`reports.network_predictor` or
      `reports.saved_model_predictor`, which needs with_bytes).
  """
  kernel_info = [classify_kernel(kernels[:, :, 0, i]) for i in range(kernels.shape[-1])]
  lines, counts = summary_lines(kernel_info)
  io_utils.write_text(os.path.join(output_dir, "filters.txt"),
                      f"first layer: {layer_name}\n" + "\n".join(lines) + "\n")
  filters_png = visualize.tile(kernel_tiles(kernels), columns=8, background=(255, 255, 255))
  io_utils.save_png(filters_png, os.path.join(output_dir, "filters.png"))

  dataset = pipeline.make_dataset(tfrecord_dir, split, 64, training=False,
                                  with_names=True, with_bytes=with_bytes, cache=False)
  if image_bytes is None:
    image_bytes = next(iter(pipeline.make_dataset(
        tfrecord_dir, split, 1, training=False, with_bytes=True, cache=False)))[
            "image_bytes"].numpy()[0]
  image = decode.decode_gray(tf.constant(image_bytes))
  regions = framing.whole_image_regions(tf.shape(image)[tf.newaxis, :2])
  image_net = framing.frame_batch(image[tf.newaxis], regions, rescale_size)[0].numpy()[0]
  maps_png = feature_map_sheet(image_net, feature_maps(image_net, kernels))
  io_utils.save_png(maps_png, os.path.join(output_dir, "feature_maps.png"))

  results = reports.collect(dataset, predict_fn)
  rows = reports.per_image_rows(results)
  chosen = worst_faces(rows, worst)
  buffer = io.StringIO()
  writer = csv.DictWriter(buffer, fieldnames=list(chosen[0]))
  writer.writeheader()
  writer.writerows(chosen)
  io_utils.write_text(os.path.join(output_dir, "worst_faces.csv"), buffer.getvalue())
  index = {name: i for i, name in enumerate(results["file_name"])}
  images = {}
  for batch in pipeline.make_dataset(tfrecord_dir, split, 64, training=False,
                                     with_names=True, cache=False):
    for name, picture, size in zip(batch["file_name"].numpy(), batch["image"].numpy(),
                                   batch["image_size"].numpy()):
      if name.decode() in {r["file_name"] for r in chosen}:
        images[name.decode()] = picture[:size[0], :size[1]]
  order = [index[r["file_name"]] for r in chosen]
  worst_png = visualize.face_panel([images[r["file_name"]] for r in chosen],
                                   results["true_px"][order], results["pred_px"][order],
                                   columns=4, captions=[r["file_name"] for r in chosen])
  io_utils.save_png(worst_png, os.path.join(output_dir, "worst_faces.png"))
  regions_summary = reports.summarise(results["pred_px"], results["true_px"],
                                       results["image_size"])["nme_io_by_region"]
  region_png = visualize.bar_chart({k: 100 * v for k, v in regions_summary.items()},
                                   f"NME_io by region, % ({split} split)")
  io_utils.save_png(region_png, os.path.join(output_dir, "region_errors.png"))
  if log_dir:
    writer = tf.summary.create_file_writer(os.path.join(log_dir, "inspect"))
    with writer.as_default():
      for name, picture in (("filters", filters_png), ("feature_maps", maps_png),
                            ("worst_faces", worst_png), ("region_errors", region_png)):
        tf.summary.image(name, visualize.to_summary_array([picture]), step=0)
    writer.flush()
  return counts, chosen
