r"""Draws the accuracy / speed trade-off of every model tried, each point from one path.

  python -m tools.pareto_plot --rows=docs/pareto_rows.json --output=docs/pareto_val.png

--rows is a JSON list of rows, each from one evaluate + one bench run of the same path:
  name           the label
  path           "whole image" (the model finds the face in a face crop itself),
                 "box" (from a given face box: the true keypoint box), or "detect" (a photo:
                 detection + keypoints)
  val_nme_io     val NME_io (a fraction) on that path
  ratio_to_dlib  time per face on that path / dlib's on the same images in the same run:
                 its 68-point predictor from a box for "whole image" and "box", its HOG
                 detector + predictor for "detect"
  ms_per_face, source   optional: the run's own time and where the figures come from
Times from different runs are compared as ratios (the machine's load changes the
milliseconds, not much the ratio). Per path, the rows no other row of that path beats on
both are joined; the reference lines mark MediaPipe's val NME_io and dlib's time.
"""

import json
import math

from absl import flags

from fkd_tf.cli import command

MEDIAPIPE_VAL_NME = 0.0668  # the independent evaluator's MediaPipe figure on val
# Path -> (colour, marker, legend text).
PATHS = {
    "whole image": ((30, 100, 220), "circle", "whole image (finds the face itself)"),
    "box": ((20, 140, 60), "square", "from a face box (the true keypoint box)"),
    "detect": ((150, 60, 200), "triangle",
               "detect on a photo (time vs dlib HOG + predictor)"),
}
REQUIRED = ("name", "path", "val_nme_io", "ratio_to_dlib")
DOT_RADIUS = 6
DLIB_COLOUR = (0, 140, 140)


def read_rows(path):
  """The rows of a --rows file, checked.

  Raises:
    ValueError naming the row: a missing field, an unknown path, a value not positive.
  """
  with open(path) as f:
    rows = json.load(f)
  for i, row in enumerate(rows):
    missing = [key for key in REQUIRED if key not in row]
    if missing:
      raise ValueError(f"{path}: row {i} ({row.get('name')}) lacks {missing}")
    if row["path"] not in PATHS:
      raise ValueError(f"{path}: row {i} ({row['name']}): path {row['path']!r} is not one "
                       f"of {list(PATHS)}")
    if not (row["val_nme_io"] > 0 and row["ratio_to_dlib"] > 0):
      raise ValueError(f"{path}: row {i} ({row['name']}): val_nme_io and ratio_to_dlib "
                       "must be positive")
  return rows


def pareto_front(rows):
  """The rows no other row beats on both NME and time, fastest first."""
  front = []
  for row in sorted(rows, key=lambda r: (r["ratio_to_dlib"], r["val_nme_io"])):
    if not front or row["val_nme_io"] < front[-1]["val_nme_io"]:
      front.append(row)
  return front


def _marker(draw, centre, shape, colour, filled, radius=DOT_RADIUS):
  x, y = centre
  fill = colour if filled else (255, 255, 255)
  if shape == "square":
    draw.rectangle([x - radius, y - radius, x + radius, y + radius], fill=fill,
                   outline=colour, width=2)
  elif shape == "triangle":
    draw.polygon([(x, y - radius - 1), (x + radius + 1, y + radius), (x - radius - 1,
                                                                      y + radius)],
                 fill=fill, outline=colour, width=2)
  else:
    draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=fill,
                 outline=colour, width=2)


def _label_spots(dot_box, text_w, text_h):
  """Candidate label boxes around a dot, nearest first: right, left, above, below, then
  right and left stepped up, down and out by a line at a time."""
  x0, y0, x1, y1 = dot_box
  cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
  gap = 5
  right = lambda dx, dy: (x1 + gap + dx, cy - text_h / 2 + dy, x1 + gap + dx + text_w,
                          cy + text_h / 2 + dy)
  left = lambda dx, dy: (x0 - gap - dx - text_w, cy - text_h / 2 + dy, x0 - gap - dx,
                         cy + text_h / 2 + dy)
  spots = [right(0, 0), left(0, 0),
           (cx - text_w / 2, y0 - gap - text_h, cx + text_w / 2, y0 - gap),
           (cx - text_w / 2, y1 + gap, cx + text_w / 2, y1 + gap + text_h)]
  steps = sorted(((dx, dy) for dx in (0, 2 * text_h, 4 * text_h, 6 * text_h)
                  for dy in range(-12, 13) if (dx, dy) != (0, 0)),
                 key=lambda step: step[0] ** 2 + (step[1] * text_h) ** 2)
  for dx, dy in steps:
    spots += [right(dx, dy * text_h), left(dx, dy * text_h)]
  return spots


def draw_plot(rows, size=(900, 560)):
  """The picture and where everything went.

  Returns:
    (PIL picture, {name: label box}, {name: dot box}); boxes are (x0, y0, x1, y1) pixels.
    Labels are placed after every dot and line, each where it covers nothing drawn
    (`visualize.free_spot`), so no dot hides a label.
  """
  from PIL import Image, ImageDraw  # pylint: disable=g-import-not-at-top
  # pylint: disable=g-import-not-at-top  (TensorFlow: keeps --help fast)
  from fkd_tf.inference import visualize
  width, height = size
  left, right, top, bottom = 64, 24, 40, 60
  picture = Image.new("RGB", size, "white")
  draw = ImageDraw.Draw(picture)
  tick_font, text_font = visualize.font(13), visualize.font(14)
  ratios = [r["ratio_to_dlib"] for r in rows] + [1.0]
  low_t, high_t = math.log10(min(ratios) / 1.6), math.log10(max(ratios) * 1.6)
  nmes = [100 * r["val_nme_io"] for r in rows] + [100 * MEDIAPIPE_VAL_NME]
  low_e, high_e = max(0.0, math.floor(min(nmes)) - 1.0), math.ceil(max(nmes)) + 1.0
  to_x = lambda r: left + (width - left - right) * (math.log10(r) - low_t) / (high_t - low_t)
  to_y = lambda nme: height - bottom - (height - top - bottom) * (nme - low_e) / (high_e - low_e)
  area = (left, top, width - right, height - bottom)
  for exponent in range(math.floor(low_t), math.ceil(high_t) + 1):
    for mantissa in (1, 2, 5):
      ratio = mantissa * 10 ** exponent
      if low_t <= math.log10(ratio) <= high_t:
        draw.line([to_x(ratio), area[1], to_x(ratio), area[3]], fill=visualize.GRID_COLOUR)
        draw.text((to_x(ratio), area[3] + 6), f"{ratio:g}x", fill="black", font=tick_font,
                  anchor="ma")
  step = 5 if high_e - low_e > 20 else 1
  for nme in range(int(math.ceil(low_e)), int(high_e) + 1, step):
    draw.line([area[0], to_y(nme), area[2], to_y(nme)], fill=visualize.GRID_COLOUR)
    draw.text((area[0] - 8, to_y(nme)), f"{nme}%", fill="black", font=tick_font, anchor="rm")
  draw.rectangle(area, outline="black")
  draw.text(((area[0] + area[2]) / 2, height - 10),
            "time per face / dlib's on the same path and images, one run, one thread "
            "(log scale)", fill="black", font=text_font, anchor="md")
  draw.text((area[0], 12), "val NME_io (35 persons never trained on), each point's error and "
            "time from the same path", fill="black", font=text_font)
  mediapipe_y = to_y(100 * MEDIAPIPE_VAL_NME)
  draw.line([area[0], mediapipe_y, area[2], mediapipe_y], fill=visualize.MARKER_COLOUR)
  dlib_x = to_x(1.0)
  draw.line([dlib_x, area[1], dlib_x, area[3]], fill=DLIB_COLOUR)
  dots = {}
  for path, (colour, shape, _) in PATHS.items():
    path_rows = [r for r in rows if r["path"] == path]
    front = pareto_front(path_rows)
    if len(front) > 1:
      draw.line([(to_x(r["ratio_to_dlib"]), to_y(100 * r["val_nme_io"])) for r in front],
                fill=colour, width=2)
    for row in path_rows:
      x, y = to_x(row["ratio_to_dlib"]), to_y(100 * row["val_nme_io"])
      _marker(draw, (x, y), shape, colour, filled=row in front)
      dots[row["name"]] = (x - DOT_RADIUS - 1, y - DOT_RADIUS - 1, x + DOT_RADIUS + 1,
                           y + DOT_RADIUS + 1)
  inner = (area[0] + 2, area[1] + 2, area[2] - 2, area[3] - 2)
  _legend(picture, draw, text_font, inner)
  labels = _place_labels(picture, draw, rows, dots, inner, text_font)
  _name_reference_lines(picture, draw, inner, mediapipe_y, dlib_x, text_font)
  return picture, labels, dots


def _place_labels(picture, draw, rows, dots, inner, text_font):
  """Each row's name beside its marker where it covers nothing; {name: label box}.

  Fastest rows first; a label stepped away from its marker gets a grey leader line.
  """
  from fkd_tf.inference import visualize  # pylint: disable=g-import-not-at-top
  fronts = {path: pareto_front([r for r in rows if r["path"] == path]) for path in PATHS}
  labels = {}
  for row in sorted(rows, key=lambda r: (r["ratio_to_dlib"], r["val_nme_io"])):
    colour, shape, _ = PATHS[row["path"]]
    left, top, right, bottom = draw.textbbox((0, 0), row["name"], font=text_font)
    dot = dots[row["name"]]
    spots = _label_spots(dot, right - left + 6, bottom - top + 6)
    # A label may cross the thin reference lines (their names come after the labels).
    box, _ = visualize.free_spot(picture, spots, inner,
                                 taken=list(labels.values()) + list(dots.values()),
                                 background=((255, 255, 255), visualize.GRID_COLOUR,
                                             visualize.MARKER_COLOUR, DLIB_COLOUR))
    if box not in spots[:4]:
      centre = ((dot[0] + dot[2]) / 2, (dot[1] + dot[3]) / 2)
      side_x = box[0] if box[0] > dot[2] else box[2]
      draw.line([centre, (side_x, (box[1] + box[3]) / 2)], fill=(150, 150, 150))
      _marker(draw, centre, shape, colour, row in fronts[row["path"]])  # over the line
    draw.text((box[0] + 3 - left, box[1] + 3 - top), row["name"], fill=colour,
              font=text_font)
    labels[row["name"]] = box
  return labels


def _name_reference_lines(picture, draw, inner, mediapipe_y, dlib_x, text_font):
  """MediaPipe's name at the right end of its line, dlib's down its line, each at the
  first place that covers nothing."""
  from fkd_tf.inference import visualize  # pylint: disable=g-import-not-at-top
  for text, colour in ((f"MediaPipe on val ({100 * MEDIAPIPE_VAL_NME:.2f} %)",
                        visualize.MARKER_COLOUR), ("dlib's time", DLIB_COLOUR)):
    w = draw.textlength(text, font=text_font) + 6
    if colour == DLIB_COLOUR:
      spots = [(dlib_x + 4, inner[1] + 4 + k, dlib_x + 4 + w, inner[1] + 21 + k)
               for k in range(0, 300, 20)]
    else:
      spots = [(inner[2] - 4 - w, mediapipe_y - 20 - k, inner[2] - 4, mediapipe_y - 3 - k)
               for k in (0, -23, 22, -45, 44)]
    (x0, y0, _, _), _ = visualize.free_spot(picture, spots, inner)
    draw.text((x0 + 3, y0 + 1), text, fill=colour, font=text_font)


def _legend(picture, draw, text_font, inner):
  """The paths' markers and meanings, where they cover nothing (top left first)."""
  from fkd_tf.inference import visualize  # pylint: disable=g-import-not-at-top
  line_h = 20
  w = max(draw.textlength(text, font=text_font) for _, _, text in PATHS.values()) + 40
  h = line_h * len(PATHS) + 8
  spots = [(inner[0] + 6, inner[1] + 6 + k * 10, inner[0] + 6 + w, inner[1] + 6 + k * 10 + h)
           for k in range(10)]
  spots += [(inner[2] - 6 - w, inner[3] - 6 - h - k * 10, inner[2] - 6,
             inner[3] - 6 - k * 10) for k in range(10)]
  (x0, y0, x1, y1), _ = visualize.free_spot(picture, spots, inner)
  draw.rectangle([x0, y0, x1, y1], fill="white", outline=(160, 160, 160))
  for i, (colour, shape, text) in enumerate(PATHS.values()):
    y = y0 + 4 + i * line_h + line_h / 2
    _marker(draw, (x0 + 16, y), shape, colour, True, radius=5)
    draw.text((x0 + 32, y), text, fill="black", font=text_font, anchor="lm")


def plot(rows, size=(900, 560)):
  """PIL picture: log-scale time ratio to dlib on x, val NME_io % on y, one labelled
  marker per row (filled on its path's front, hollow when dominated)."""
  return draw_plot(rows, size)[0]


FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_string("rows", "docs/pareto_rows.json", "JSON list of rows (name, path, "
                      "val_nme_io, ratio_to_dlib; the module's docstring says what each is).")
  flags.DEFINE_string("output", "docs/pareto_val.png", "Where the PNG goes.")


def main(argv):
  del argv
  from fkd_tf.utils import io_utils  # pylint: disable=g-import-not-at-top
  rows = read_rows(FLAGS.rows)
  io_utils.save_png(plot(rows), FLAGS.output)
  for path in PATHS:
    for row in pareto_front([r for r in rows if r["path"] == path]):
      print(f"front ({path}): {row['name']}: val NME_io {100 * row['val_nme_io']:.2f} %, "
            f"{row['ratio_to_dlib']:.2f}x dlib")
  print(f"wrote {FLAGS.output}")


def run():
  """The `fkd-pareto-plot` console command."""
  command.run(main, define_flags)


if __name__ == "__main__":
  run()
