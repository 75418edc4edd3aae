"""Pictures people would rather look at than read: keypoint overlays and error curves.

Drawn with Pillow (no plotting library needed); every function returns a PIL image that
callers save as PNG or hand to TensorBoard via `to_summary_array`.
"""

import numpy as np
from PIL import Image, ImageDraw

from fkd_tf.core import metrics

TRUE_COLOUR = (40, 220, 40)
PRED_COLOUR = (255, 60, 200)


def draw_keypoints(image, keypoint_sets, upscale=3, radius=2):
  """Overlays point sets on a gray or RGB image.

  Args:
    image: [H, W] or [H, W, 1|3] array, uint8 or float in [0, 1].
    keypoint_sets: list of ([68, 2] points in the image's pixels, (r, g, b)).
    upscale: the picture is enlarged so that points on small faces stay visible.
  """
  image = np.asarray(image)
  if image.dtype != np.uint8:
    image = (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
  if image.ndim == 3 and image.shape[-1] == 1:
    image = image[..., 0]
  picture = Image.fromarray(image).convert("RGB")
  picture = picture.resize((picture.width * upscale, picture.height * upscale),
                           Image.NEAREST)
  draw = ImageDraw.Draw(picture)
  for points, colour in keypoint_sets:
    for x, y in np.asarray(points, np.float64) * upscale:
      draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=colour)
  return picture


def tile(pictures, columns=4, background=(0, 0, 0)):
  """Lays same-size or mixed-size PIL pictures out in a grid."""
  columns = max(1, min(columns, len(pictures)))
  rows = (len(pictures) + columns - 1) // columns
  cell_w = max(p.width for p in pictures)
  cell_h = max(p.height for p in pictures)
  sheet = Image.new("RGB", (columns * cell_w, rows * cell_h), background)
  for i, picture in enumerate(pictures):
    sheet.paste(picture, ((i % columns) * cell_w, (i // columns) * cell_h))
  return sheet


def cumulative_error_plot(curves, threshold=metrics.FAILURE_THRESHOLD, size=(640, 480)):
  """Cumulative NME curves: {label: per-face NMEs} -> PIL image with axes and legend."""
  palette = [(30, 100, 220), (220, 60, 40), (40, 160, 60), (150, 60, 200), (230, 150, 0)]
  width, height = size
  left, right, top, bottom = 60, 20, 20, 50
  picture = Image.new("RGB", size, "white")
  draw = ImageDraw.Draw(picture)
  to_x = lambda t: left + (width - left - right) * t / threshold
  to_y = lambda f: height - bottom - (height - top - bottom) * f
  for tick in range(11):
    fraction = tick / 10
    draw.line([to_x(0), to_y(fraction), to_x(threshold), to_y(fraction)], fill=(225, 225, 225))
    draw.text((8, to_y(fraction) - 6), f"{fraction:.1f}", fill="black")
    t = threshold * tick / 10
    draw.line([to_x(t), to_y(0), to_x(t), to_y(1)], fill=(225, 225, 225))
    draw.text((to_x(t) - 10, height - bottom + 6), f"{100 * t:.0f}%", fill="black")
  draw.rectangle([to_x(0), to_y(1), to_x(threshold), to_y(0)], outline="black")
  draw.text((width // 2 - 60, height - 22), "NME (inter-ocular)", fill="black")
  draw.text((left + 6, top + 2), "fraction of faces", fill="black")
  for i, (label, nmes) in enumerate(curves.items()):
    colour = palette[i % len(palette)]
    thresholds, fractions = metrics.cumulative_curve(nmes, threshold)
    draw.line([(to_x(t), to_y(f)) for t, f in zip(thresholds, fractions)], fill=colour,
              width=2)
    text = f"{label}: AUC@10 {metrics.auc(nmes, threshold):.3f}"
    draw.text((to_x(threshold * 0.35), to_y(0.25 - 0.06 * i)), text, fill=colour)
  return picture


def bar_chart(values, title, size=(480, 320)):
  """A labelled bar chart of {name: value} (e.g. the per-region error)."""
  width, height = size
  picture = Image.new("RGB", size, "white")
  draw = ImageDraw.Draw(picture)
  draw.text((10, 6), title, fill="black")
  top = max(max(values.values()), 1e-9)
  slot = (width - 40) / len(values)
  for i, (name, value) in enumerate(values.items()):
    x0 = 20 + i * slot + slot * 0.15
    y0 = height - 40 - (height - 80) * value / top
    draw.rectangle([x0, y0, x0 + slot * 0.7, height - 40], fill=(30, 100, 220))
    draw.text((x0, height - 34), name, fill="black")
    draw.text((x0, y0 - 14), f"{value:.3g}", fill="black")
  return picture


def to_summary_array(pictures):
  """PIL pictures -> [K, H, W, 3] uint8 for tf.summary.image (same size required)."""
  return np.stack([np.asarray(p.convert("RGB")) for p in pictures])
