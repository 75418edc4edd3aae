r"""Draws the accuracy / speed trade-off of every model tried: val NME_io against ms/face.

  python -m tools.pareto_plot --rows=docs/pareto_rows.json --output=docs/pareto_val.png

--rows is a JSON list of {"name", "val_nme_io" (a fraction), "ms_per_face", "ratio_to_dlib"
(optional)} rows, each from one evaluate + bench run. Points on the Pareto front (no other
model both faster and more accurate) are joined; the reference lines mark MediaPipe's val
NME_io and dlib's time (ratio 1.0), the issue's bars.
"""

import json
import math

from absl import flags
from PIL import Image, ImageDraw

from fkd_tf.utils import io_utils
from fkd_tf.cli import command

MEDIAPIPE_VAL_NME = 0.0668  # the independent evaluator's MediaPipe figure on val


def pareto_front(rows):
  """The rows no other row beats on both NME and time, fastest first."""
  front = []
  for row in sorted(rows, key=lambda r: (r["ms_per_face"], r["val_nme_io"])):
    if not front or row["val_nme_io"] < front[-1]["val_nme_io"]:
      front.append(row)
  return front


def plot(rows, dlib_ms=None, size=(760, 520)):
  """PIL picture: log-scale ms/face on x, val NME_io % on y, one labelled dot per row."""
  width, height = size
  left, right, top, bottom = 70, 30, 30, 60
  picture = Image.new("RGB", size, "white")
  draw = ImageDraw.Draw(picture)
  times = [r["ms_per_face"] for r in rows] + ([dlib_ms] if dlib_ms else [])
  low_t, high_t = math.log10(min(times) / 1.5), math.log10(max(times) * 1.5)
  nmes = [100 * r["val_nme_io"] for r in rows] + [100 * MEDIAPIPE_VAL_NME]
  low_e, high_e = max(0.0, math.floor(min(nmes)) - 1.0), math.ceil(max(nmes)) + 1.0
  to_x = lambda ms: left + (width - left - right) * (math.log10(ms) - low_t) / (high_t - low_t)
  to_y = lambda nme: height - bottom - (height - top - bottom) * (nme - low_e) / (high_e - low_e)
  for exponent in range(math.floor(low_t), math.ceil(high_t) + 1):
    for mantissa in (1, 2, 5):
      ms = mantissa * 10 ** exponent
      if low_t <= math.log10(ms) <= high_t:
        draw.line([to_x(ms), to_y(low_e), to_x(ms), to_y(high_e)], fill=(228, 228, 228))
        draw.text((to_x(ms) - 8, height - bottom + 6), f"{ms:g}", fill="black")
  step = 5 if high_e > 20 else 1
  for nme in range(0, int(high_e) + 1, step):
    draw.line([to_x(10 ** low_t), to_y(nme), to_x(10 ** high_t), to_y(nme)], fill=(228, 228, 228))
    draw.text((12, to_y(nme) - 6), f"{nme}%", fill="black")
  draw.rectangle([left, top, width - right, height - bottom], outline="black")
  draw.text((width // 2 - 120, height - 26), "ms per face (one thread, log scale)", fill="black")
  draw.text((left + 6, top + 4), "val NME_io (unseen persons)", fill="black")
  mediapipe_y = to_y(100 * MEDIAPIPE_VAL_NME)
  draw.line([left, mediapipe_y, width - right, mediapipe_y], fill=(230, 120, 0), width=1)
  draw.text((width - right - 170, mediapipe_y - 14), "MediaPipe on val (6.68 %)",
            fill=(230, 120, 0))
  if dlib_ms:
    draw.line([to_x(dlib_ms), top, to_x(dlib_ms), height - bottom], fill=(0, 140, 140))
    draw.text((to_x(dlib_ms) + 4, top + 20), "dlib's time", fill=(0, 140, 140))
  front = pareto_front(rows)
  draw.line([(to_x(r["ms_per_face"]), to_y(100 * r["val_nme_io"])) for r in front],
            fill=(30, 100, 220), width=2)
  placed = []
  for row in rows:
    x, y = to_x(row["ms_per_face"]), to_y(100 * row["val_nme_io"])
    colour = (30, 100, 220) if row in front else (120, 120, 120)
    draw.ellipse([x - 5, y - 5, x + 5, y + 5], fill=colour)
    # Labels go left of dots near the right edge, and step down past labels already there.
    text_width = draw.textlength(row["name"])
    text_x = x - 8 - text_width if x + 8 + text_width > width - right else x + 8
    text_y = y - 6
    while any(abs(text_y - other_y) < 13 and abs(text_x - other_x) < 200
              for other_x, other_y in placed):
      text_y += 13
    placed.append((text_x, text_y))
    draw.text((text_x, text_y), row["name"], fill=colour)
  return picture


FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_string("rows", None, "JSON list of rows (name, val_nme_io, ms_per_face).")
  flags.DEFINE_string("output", "docs/pareto_val.png", "Where the PNG goes.")
  flags.DEFINE_float("dlib_ms", None, "dlib's ms/face measured in the same runs (a line).")
  flags.mark_flag_as_required("rows")


def main(argv):
  del argv
  with open(FLAGS.rows) as f:
    rows = json.load(f)
  io_utils.save_png(plot(rows, FLAGS.dlib_ms), FLAGS.output)
  for row in pareto_front(rows):
    print(f"front: {row['name']}: val NME_io {100 * row['val_nme_io']:.2f} %, "
          f"{row['ms_per_face']:.2f} ms/face")
  print(f"wrote {FLAGS.output}")


def run():
  """The `fkd-pareto-plot` console command."""
  command.run(main, define_flags)


if __name__ == "__main__":
  run()
