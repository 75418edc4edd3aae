"""Pictures people would rather look at than read: keypoint overlays and error curves.

Drawn with Pillow (no plotting library needed); every function returns a PIL image that
callers save as PNG or hand to TensorBoard via `to_summary_array`.
"""

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from fkd_tf.core import metrics

TRUE_COLOUR = (40, 220, 40)
PRED_COLOUR = (255, 60, 200)

# The iBUG 68-point face drawn as polylines: (first, last point, closed). A face drawn
# as lines shows at a glance which part a prediction gets wrong; 68 loose dots do not.
OUTLINES = (
    (0, 16, False),                   # jaw
    (17, 21, False), (22, 26, False),  # brows
    (27, 30, False), (31, 35, False),  # nose bridge, nostrils
    (36, 41, True), (42, 47, True),    # eyes
    (48, 59, True), (60, 67, True),    # outer and inner lips
)

# A face tile shows this multiple of the joint keypoint box of truth and prediction:
# enough forehead and chin for context, small enough that the points stay large.
TILE_MARGIN = 1.4
TILE_SIZE = 192


def _as_rgb_picture(image):
  """[H, W] or [H, W, 1|3|4] array (uint8, or float in [0, 1]) -> RGB PIL image."""
  image = np.asarray(image)
  if image.dtype != np.uint8:
    image = (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
  if image.ndim == 3 and image.shape[-1] == 1:
    image = image[..., 0]
  return Image.fromarray(image).convert("RGB")


def _draw_face(draw, points, colour, radius, line_width):
  """Outline polylines, then a dot on each point, of one [68, 2] set in picture pixels."""
  points = [tuple(p) for p in np.asarray(points, np.float64)]
  if line_width and len(points) == 68:
    for first, last, closed in OUTLINES:
      line = points[first:last + 1] + (points[first:first + 1] if closed else [])
      draw.line(line, fill=colour, width=line_width, joint="curve")
  for x, y in points:
    draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=colour)


def font(size):
  """Pillow's default font at `size` pixels (its bitmap font where FreeType is missing)."""
  try:
    return ImageFont.load_default(size=size)
  except (TypeError, ImportError, OSError):  # Pillow without FreeType: the bitmap font
    return ImageFont.load_default()


def draw_keypoints(image, keypoint_sets, upscale=3, radius=2, line_width=0):
  """Overlays point sets on a whole gray or RGB image.

  Args:
    image: a PIL image, or [H, W] / [H, W, 1|3|4] array, uint8 or float in [0, 1].
    keypoint_sets: list of ([68, 2] points in the image's pixels, (r, g, b)); or, to
      draw a result, `detect`'s Face records or `predict`'s [N, 68, 2] keypoints (drawn
      in PRED_COLOUR; `draw_faces` adds boxes and scores).
    upscale: the picture is enlarged so that points on small faces stay visible.
    line_width: when positive, the face's outline (`OUTLINES`) is drawn too.
  """
  if isinstance(keypoint_sets, np.ndarray):
    keypoint_sets = [(points, PRED_COLOUR) for points in keypoint_sets.reshape(-1, 68, 2)]
  keypoint_sets = [(s.keypoints, PRED_COLOUR) if hasattr(s, "keypoints") else s
                   for s in keypoint_sets]
  picture = _as_rgb_picture(np.asarray(image))
  picture = picture.resize((picture.width * upscale, picture.height * upscale),
                           Image.NEAREST)
  draw = ImageDraw.Draw(picture)
  for points, colour in keypoint_sets:
    _draw_face(draw, np.asarray(points, np.float64) * upscale, colour, radius, line_width)
  return picture


BOX_COLOUR = (255, 210, 0)


def _face_fields(face):
  """(box or None, score or None, keypoints [68, 2]) of an api.Face or a predict record."""
  if isinstance(face, dict):
    return face.get("box"), face.get("score"), np.asarray(face["keypoints"], np.float64)
  return (getattr(face, "box", None), getattr(face, "score", None),
          np.asarray(face.keypoints, np.float64))


def draw_faces(image, faces, upscale=1, boxes=True, colour=PRED_COLOUR, radius=2,
               line_width=1):
  """The documented way to draw a result: each face's keypoints, box and score.

    faces = fkd_tf.load().detect("group.jpg")
    fkd_tf.inference.visualize.draw_faces(Image.open("group.jpg"), faces).save("out.png")

  Args:
    image: a PIL image, or [H, W] / [H, W, 1|3|4] array (uint8, or float in [0, 1]).
    faces: `api.Face` records (from `detect`) or dicts with "keypoints" (and "box",
      "score"), as predict's JSON holds them; or [K, 68, 2] keypoints.
    upscale: the picture is enlarged so that points on small faces stay visible.
    boxes: draw the boxes and scores too.
  Returns:
    An RGB PIL image.
  """
  if isinstance(faces, np.ndarray):
    faces = [{"keypoints": points} for points in faces.reshape(-1, 68, 2)]
  picture = draw_keypoints(np.asarray(image), [(_face_fields(f)[2], colour) for f in faces],
                           upscale=upscale, radius=radius, line_width=line_width)
  if not boxes:
    return picture
  draw = ImageDraw.Draw(picture)
  text_font = font(max(10, picture.width // 60))
  for face in faces:
    box, score, _ = _face_fields(face)
    if box is None:
      continue
    x0, y0, x1, y1 = (float(v) * upscale for v in box)
    draw.rectangle([x0, y0, x1, y1], outline=BOX_COLOUR, width=max(1, line_width))
    if score is not None and np.isfinite(score):
      _boxed_text(draw, (x0 + 2, max(y0 - 2, 12)), f"{float(score):.2f}", text_font, "ld")
  return picture


def crop_box(keypoint_sets, margin=TILE_MARGIN):
  """The square (x0, y0, x1, y1), image pixels, `margin` times the sets' joint box."""
  points = np.concatenate([np.asarray(p, np.float64).reshape(-1, 2) for p in keypoint_sets])
  points = points[np.all(np.isfinite(points), axis=1)]
  low, high = points.min(axis=0), points.max(axis=0)
  centre = (low + high) / 2.0
  half = max(margin * float(np.max(high - low)) / 2.0, 1.0)
  return (centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half)


def face_tile(image, keypoint_sets, label=None, size=TILE_SIZE, margin=TILE_MARGIN,
              caption=None):
  """One face cropped around its keypoints and drawn large, with outlines and a label.

  Args:
    image: the whole image, [H, W] or [H, W, 1|3] (uint8, or float in [0, 1]).
    keypoint_sets: list of ([68, 2] points in the image's pixels, (r, g, b)), drawn in
      order (put the truth first, so the prediction is on top).
    label: text in the top-left corner (e.g. "NME_io 4.2%").
    caption: text along the bottom (e.g. the file name), cut to the tile's width.
    size: the tile's side in pixels; every face fills it whatever its size in the image.
  Returns:
    A size x size RGB PIL image; outside the image is black.
  """
  x0, y0, x1, y1 = crop_box([points for points, _ in keypoint_sets], margin)
  scale = size / (x1 - x0)
  # EXTENT maps the box's edges onto the tile's edges (pixel centres at +0.5 on both
  # sides), so a point moves by (p - corner) * scale in the continuous convention.
  tile_picture = _as_rgb_picture(image).transform(
      (size, size), Image.EXTENT, (x0, y0, x1, y1), Image.BILINEAR, fillcolor=(0, 0, 0))
  draw = ImageDraw.Draw(tile_picture)
  radius = max(1.5, size / 96)
  line_width = max(1, int(round(size / 128)))
  for points, colour in keypoint_sets:
    _draw_face(draw, (np.asarray(points, np.float64) - (x0, y0)) * scale, colour, radius,
               line_width)
  text_font = font(max(10, size // 14))
  if label:
    _boxed_text(draw, (4, 3), label, text_font, "la")
  if caption:
    while len(caption) > 4 and draw.textlength(caption, font=text_font) > size - 8:
      caption = caption[:-4] + "..."  # keeps the start, where a file name differs
    _boxed_text(draw, (4, size - 3), caption, text_font, "ld")
  return tile_picture


def _boxed_text(draw, xy, text, text_font, anchor):
  """White text on a black box, readable over any face."""
  left, top, right, bottom = draw.textbbox(xy, text, font=text_font, anchor=anchor)
  draw.rectangle([left - 3, top - 2, right + 3, bottom + 2], fill=(0, 0, 0))
  draw.text(xy, text, fill=(255, 255, 255), font=text_font, anchor=anchor)


def face_panel(images, true_px, pred_px, columns=4, size=TILE_SIZE, captions=None,
               title=None):
  """A grid of face tiles, truth (green) under prediction (magenta), each with its NME_io.

  Args:
    images: list of whole images ([H, W] or [H, W, 1|3] arrays, no padding).
    true_px, pred_px: [N, 68, 2] keypoints in each image's pixels.
    captions: optional list of N strings along each tile's bottom (e.g. file names).
    title: optional text at the right of the legend strip (e.g. the model and its path).
  Returns:
    A PIL image: a legend strip over the grid.
  """
  true_px = np.asarray(true_px, np.float32)
  pred_px = np.asarray(pred_px, np.float32)
  nmes = metrics.nme(pred_px, true_px).numpy()
  tiles = []
  for i, (image, truth, guess) in enumerate(zip(images, true_px, pred_px)):
    tiles.append(face_tile(image, [(truth, TRUE_COLOUR), (guess, PRED_COLOUR)],
                           f"NME_io {100 * nmes[i]:.1f}%", size,
                           caption=captions[i] if captions is not None else None))
  grid = tile(tiles, columns=columns)
  text_font = font(max(10, size // 14))
  strip_height = max(16, size // 9)
  panel = Image.new("RGB", (grid.width, grid.height + strip_height), (0, 0, 0))
  panel.paste(grid, (0, strip_height))
  draw = ImageDraw.Draw(panel)
  x = 6
  for text, colour in (("truth", TRUE_COLOUR), ("prediction", PRED_COLOUR)):
    draw.rectangle([x, strip_height // 2 - 3, x + 14, strip_height // 2 + 3], fill=colour)
    draw.text((x + 20, strip_height // 2), text, fill=(255, 255, 255), font=text_font,
              anchor="lm")
    x += 30 + int(draw.textlength(text, font=text_font))
  if title:
    draw.text((panel.width - 6, strip_height // 2), title, fill=(255, 255, 255),
              font=text_font, anchor="rm")
  return panel


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


CURVE_PALETTE = ((30, 100, 220), (220, 60, 40), (40, 160, 60), (150, 60, 200),
                 (230, 150, 0))
MARKER_COLOUR = (230, 120, 0)
GRID_COLOUR = (225, 225, 225)


def free_spot(picture, boxes, bounds=None, taken=(),
              background=((255, 255, 255), GRID_COLOUR)):
  """The first of the candidate boxes that covers nothing drawn, else the least covering.

  Labels placed this way never hide a dot, a curve or an earlier label: each candidate's
  pixels are counted against what the picture already holds.

  Args:
    picture: the PIL picture drawn so far.
    boxes: candidate (x0, y0, x1, y1) boxes in picture pixels, in order of preference.
    bounds: (x0, y0, x1, y1) a candidate must lie inside (default: the picture).
    taken: boxes already claimed (labels placed before: their margins hold no ink);
      overlapping one counts as its overlap's area of drawn pixels.
    background: colours that count as empty (the paper, the grid).
  Returns:
    (box, count of drawn pixels under it).
  """
  pixels = np.asarray(picture.convert("RGB")).astype(np.int16)
  bx0, by0, bx1, by1 = bounds or (0, 0, picture.width, picture.height)
  best = None
  for box in boxes:
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    if x0 < bx0 or y0 < by0 or x1 > bx1 or y1 > by1:
      continue
    region = pixels[y0:y1, x0:x1]
    empty = np.zeros(region.shape[:2], bool)
    for colour in background:
      empty |= np.all(region == colour, axis=-1)
    count = int((~empty).sum()) + sum(_overlap_area(box, other) for other in taken)
    if best is None or count < best[1]:
      best = (box, count)
    if count == 0:
      break
  return best if best is not None else (boxes[0], -1)


def _overlap_area(a, b):
  return int(max(0.0, min(a[2], b[2]) - max(a[0], b[0])) *
             max(0.0, min(a[3], b[3]) - max(a[1], b[1])))


def _diamond(draw, centre, radius, colour=MARKER_COLOUR):
  x, y = centre
  draw.polygon([(x, y - radius), (x + radius, y), (x, y + radius), (x - radius, y)],
               fill=colour, outline="black")


def cumulative_error_plot(curves, threshold=metrics.FAILURE_THRESHOLD, size=(640, 480),
                          markers=(), title=None):
  """Cumulative NME curves with axes, a legend and reference points; a PIL image.

  Args:
    curves: {label: per-face NMEs (fractions)}; each legend line adds the curve's AUC@10.
    threshold: the x axis' end (an NME fraction).
    markers: (label, nme, fraction of faces) points of other methods, drawn as diamonds:
      e.g. a published FR@10 as (label, 0.10, 1 - FR@10); each gets a legend line.
    title: a line over the plot.
  Returns:
    An RGB picture; the legend sits where it covers no curve (`free_spot`).
  """
  width, height = size
  left, right, top, bottom = 64, 24, 40 if title else 20, 56
  picture = Image.new("RGB", size, "white")
  draw = ImageDraw.Draw(picture)
  tick_font, text_font = font(13), font(15)
  to_x = lambda t: left + (width - left - right) * t / threshold
  to_y = lambda f: height - bottom - (height - top - bottom) * f
  for tick in range(11):
    fraction = tick / 10
    draw.line([to_x(0), to_y(fraction), to_x(threshold), to_y(fraction)], fill=GRID_COLOUR)
    draw.text((left - 8, to_y(fraction)), f"{fraction:.1f}", fill="black", font=tick_font,
              anchor="rm")
    t = threshold * tick / 10
    draw.line([to_x(t), to_y(0), to_x(t), to_y(1)], fill=GRID_COLOUR)
    draw.text((to_x(t), height - bottom + 6), f"{100 * t:.0f}%", fill="black",
              font=tick_font, anchor="ma")
  draw.rectangle([to_x(0), to_y(1), to_x(threshold), to_y(0)], outline="black")
  draw.text(((left + width - right) / 2, height - 8), "NME_io (inter-ocular), per face",
            fill="black", font=text_font, anchor="md")
  if title:
    draw.text((left, 10), title, fill="black", font=text_font)
  draw.text((left + 6, top + 4), "fraction of faces with a smaller error", fill="black",
            font=tick_font)
  legend = []
  for i, (label, nmes) in enumerate(curves.items()):
    colour = CURVE_PALETTE[i % len(CURVE_PALETTE)]
    thresholds, fractions = metrics.cumulative_curve(nmes, threshold)
    draw.line([(to_x(t), to_y(f)) for t, f in zip(thresholds, fractions)], fill=colour,
              width=3)
    legend.append((f"{label}, AUC@10 {metrics.auc(nmes, threshold):.3f}", colour))
  for label, nme, fraction in markers:
    _diamond(draw, (to_x(min(nme, threshold)), to_y(fraction)), 7)
    legend.append((label, None))
  plot_area = (to_x(0) + 2, to_y(1) + 2, to_x(threshold) - 2, to_y(0) - 2)
  if legend:
    line_h = 20
    w = max(draw.textlength(text, font=text_font) for text, _ in legend) + 44
    h = line_h * len(legend) + 8
    # Lower right first (under good curves), then the upper left (over poor ones).
    spots = [(plot_area[2] - w - 6, plot_area[3] - h - 6 - k * line_h, plot_area[2] - 6,
              plot_area[3] - 6 - k * line_h) for k in range(6)]
    spots += [(plot_area[0] + 6 + k * 40, plot_area[1] + 24, plot_area[0] + 6 + k * 40 + w,
               plot_area[1] + 24 + h) for k in range(4)]
    (x0, y0, x1, y1), _ = free_spot(picture, spots, plot_area)
    draw.rectangle([x0, y0, x1, y1], fill="white", outline=(160, 160, 160))
    for i, (text, colour) in enumerate(legend):
      y = y0 + 4 + i * line_h + line_h / 2
      if colour is None:
        _diamond(draw, (x0 + 19, y), 6)
      else:
        draw.line([x0 + 8, y, x0 + 30, y], fill=colour, width=3)
      draw.text((x0 + 38, y), text, fill="black", font=text_font, anchor="lm")
  return picture


def bar_chart(values, title, size=(640, 360)):
  """A labelled bar chart of {name: value} (e.g. the per-region error)."""
  width, height = size
  picture = Image.new("RGB", size, "white")
  draw = ImageDraw.Draw(picture)
  title_font, label_font = font(16), font(14)
  draw.text((12, 8), title, fill="black", font=title_font)
  top = max(max(values.values()), 1e-9)
  slot = (width - 40) / len(values)
  for i, (name, value) in enumerate(values.items()):
    x0 = 20 + i * slot + slot * 0.15
    y0 = height - 40 - (height - 90) * value / top
    draw.rectangle([x0, y0, x0 + slot * 0.7, height - 40], fill=(30, 100, 220))
    centre = x0 + slot * 0.35
    draw.text((centre, height - 34), name, fill="black", font=label_font, anchor="ma")
    draw.text((centre, y0 - 4), f"{value:.3g}", fill="black", font=label_font, anchor="md")
  return picture


def to_summary_array(pictures):
  """PIL pictures -> [K, H, W, 3] uint8 for tf.summary.image (same size required)."""
  return np.stack([np.asarray(p.convert("RGB")) for p in pictures])
