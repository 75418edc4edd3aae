import json

import numpy as np
import pytest

from tools import pareto_plot

ROWS = [{"name": "slow good", "path": "whole image", "val_nme_io": 0.05, "ratio_to_dlib": 5.0},
        {"name": "fast bad", "path": "whole image", "val_nme_io": 0.20, "ratio_to_dlib": 0.3},
        {"name": "dominated", "path": "whole image", "val_nme_io": 0.21, "ratio_to_dlib": 0.8},
        {"name": "middle", "path": "whole image", "val_nme_io": 0.06, "ratio_to_dlib": 0.5},
        {"name": "box one", "path": "box", "val_nme_io": 0.04, "ratio_to_dlib": 0.5},
        {"name": "detect one", "path": "detect", "val_nme_io": 0.045, "ratio_to_dlib": 0.4}]


def test_front_keeps_only_undominated_rows_fastest_first():
  whole = [r for r in ROWS if r["path"] == "whole image"]
  assert [r["name"] for r in pareto_plot.pareto_front(whole)] == ["fast bad", "middle",
                                                                  "slow good"]


def test_each_path_is_drawn_in_its_colour_dominated_rows_hollow():
  picture, _, dots = pareto_plot.draw_plot(ROWS)
  pixels = np.asarray(picture)
  for name, path in (("middle", "whole image"), ("box one", "box"),
                     ("detect one", "detect")):
    x0, y0, x1, y1 = (int(v) for v in dots[name])
    centre = pixels[(y0 + y1) // 2, (x0 + x1) // 2]
    assert tuple(centre) == pareto_plot.PATHS[path][0], name  # filled: on the front
  x0, y0, x1, y1 = (int(v) for v in dots["dominated"])
  assert tuple(pixels[(y0 + y1) // 2, (x0 + x1) // 2]) == (255, 255, 255)  # hollow
  assert np.all(pixels[y0:y1, x0:x1] == pareto_plot.PATHS["whole image"][0], axis=-1).any()


def _overlap(a, b):
  return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_no_label_is_covered_by_a_dot_or_another_label_even_when_crowded():
  # Twelve points within a few pixels of each other, as the real rows crowd near 0.5x.
  crowded = [{"name": f"model number {i}", "path": ("box", "whole image", "detect")[i % 3],
              "val_nme_io": 0.05 + 0.0004 * i, "ratio_to_dlib": 0.5 + 0.01 * i}
             for i in range(12)] + ROWS
  picture, labels, dots = pareto_plot.draw_plot(crowded)
  assert set(labels) == set(dots) == {r["name"] for r in crowded}
  for name, box in labels.items():
    assert 0 <= box[0] and box[2] <= picture.width and 0 <= box[1] and box[3] <= picture.height
    for other, dot in dots.items():
      assert not _overlap(box, dot), (name, other)
    for other, other_box in labels.items():
      assert other == name or not _overlap(box, other_box), (name, other)


def test_read_rows_names_the_bad_row(tmp_path):
  path = tmp_path / "rows.json"
  path.write_text(json.dumps(ROWS[:1] + [{"name": "x", "path": "crop", "val_nme_io": 0.1,
                                          "ratio_to_dlib": 1.0}]))
  with pytest.raises(ValueError, match=r"row 1 \(x\): path 'crop'"):
    pareto_plot.read_rows(str(path))
  path.write_text(json.dumps([{"name": "y", "val_nme_io": 0.1, "ms_per_face": 2.0}]))
  with pytest.raises(ValueError, match=r"row 0 \(y\) lacks \['path', 'ratio_to_dlib'\]"):
    pareto_plot.read_rows(str(path))
  path.write_text(json.dumps(ROWS))
  assert pareto_plot.read_rows(str(path)) == ROWS
