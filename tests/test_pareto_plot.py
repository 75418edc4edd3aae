import numpy as np

from tools import pareto_plot

ROWS = [{"name": "slow good", "val_nme_io": 0.05, "ms_per_face": 20.0},
        {"name": "fast bad", "val_nme_io": 0.20, "ms_per_face": 1.0},
        {"name": "dominated", "val_nme_io": 0.21, "ms_per_face": 3.0},
        {"name": "middle", "val_nme_io": 0.06, "ms_per_face": 2.0}]


def test_front_keeps_only_undominated_rows_fastest_first():
  assert [r["name"] for r in pareto_plot.pareto_front(ROWS)] == ["fast bad", "middle",
                                                                   "slow good"]


def test_plot_draws_every_row():
  picture = np.asarray(pareto_plot.plot(ROWS, dlib_ms=0.7))
  assert picture.shape == (520, 760, 3)
  blue = np.all(picture == (30, 100, 220), axis=-1).sum()
  grey = np.all(picture == (120, 120, 120), axis=-1).sum()
  assert blue > 100 and grey > 20  # front dots and line; the dominated row's dot
