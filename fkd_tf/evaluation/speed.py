"""Speed figures, each measured beside the figure it is compared with, in one process.

What `python -m fkd_tf.bench` prints comes from here: the machine's matmul peak, the input
pipeline, training images/s (fed from the real pipeline and from one cached batch) as a
fraction of the FLOP bound, and the serving paths against dlib on the same images.

Ratios are only trusted when both sides run under the same load: every comparison here
interleaves its two sides (step by step, image by image) and reports medians, because this
machine's load changes from second to second (a training beside the bench doubled single
step times back and forth, measured 2026-11-30).
"""

import io
import math
import os
import platform
import time
import types

import numpy as np
import tensorflow as tf

from fkd_tf.core import augment, models
from fkd_tf.core import config as config_lib
from fkd_tf.data import pipeline, records
from fkd_tf.serving import versions
from fkd_tf.training import pretrained_init, train_lib

# The augmentation every model is timed with unless a recipe (a flagfile) says otherwise.
AUGMENT_FULL = augment.AugmentConfig(max_rotation_deg=15, min_scale=0.9, max_scale=1.1,
                                     max_shift=4, flip_prob=0.5, brightness=0.15,
                                     contrast=0.3, gamma=0.25, blur_prob=0.2, erase_prob=0.2)
FEEDS = ("augmented pipeline", "cached batch")


# --- The machine ----------------------------------------------------------------------------

def cpu_description():
  """{"model": CPU name, "cores": count, "flags": the vector extensions that matter}."""
  model, flags_seen = platform.processor() or "unknown", set()
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          model = line.split(":", 1)[1].strip()
        elif line.startswith("flags"):
          flags_seen = set(line.split(":", 1)[1].split())
  except OSError:
    pass
  wanted = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
  return {"model": model, "cores": os.cpu_count(),
          "flags": [f for f in wanted if f in flags_seen]}


def load_average():
  """The 1-minute load average (os.getloadavg), or NaN where there is none."""
  try:
    return os.getloadavg()[0]
  except OSError:
    return float("nan")


def matmul_gflops(size=2048, repeats=8):
  """float32 matmul GFLOP/s with all threads (best of a few)."""
  a = tf.random.uniform([size, size])
  b = tf.random.uniform([size, size])
  tf.linalg.matmul(a, b).numpy()
  best = 0.0
  for _ in range(repeats):
    start = time.perf_counter()
    tf.linalg.matmul(a, b).numpy()
    best = max(best, 2 * size ** 3 / (time.perf_counter() - start) / 1e9)
  return best


def rss_mb():
  """Resident memory of this process, MB (Linux)."""
  with open("/proc/self/status") as f:
    for line in f:
      if line.startswith("VmRSS:"):
        return int(line.split()[1]) / 1024.0
  return float("nan")


# --- The input pipeline ---------------------------------------------------------------------

def _timed(iterator_fn, count_fn, min_seconds=3.0):
  start, images = time.perf_counter(), 0
  while True:
    for item in iterator_fn():
      images += count_fn(item)
      if time.perf_counter() - start > min_seconds:
        return images / (time.perf_counter() - start)


def pipeline_images_per_second(tfrecord_dir, batch_size=64, seconds=4.0):
  """Host pipeline (decode, gray, pad; decoded faces cached as in training) alone, and
  followed by the full batched augmentation."""
  dataset = pipeline.make_dataset(tfrecord_dir, "train", batch_size, training=True)
  for _ in dataset:  # fills the cache, as the first training epoch does
    pass
  count = lambda batch: int(batch["image"].shape[0])
  host = _timed(lambda: dataset, count, seconds)

  @tf.function(reduce_retracing=True)  # padded sizes vary by batch
  def augmented(batch, seed):
    return augment.augment_batch(batch["image"], batch["image_size"], batch["keypoints_px"],
                                 seed, AUGMENT_FULL)[0]

  seeds = iter(range(10 ** 9))
  full = _timed(lambda: (augmented(b, tf.constant([next(seeds), 0], tf.int64))
                         for b in dataset), lambda images: int(images.shape[0]), seconds)
  return {"host_decode_pad": host, "with_full_augmentation": full}


# --- Training -------------------------------------------------------------------------------

def model_config(tfrecord_dir, model, batch_size=64, mixed=False, jit_compile=False,
                 steps_per_execution=1):
  """The TrainConfig a model is timed with when no recipe is given (AUGMENT_FULL)."""
  return config_lib.TrainConfig(tfrecord_dir=tfrecord_dir, model_dir="", model=model,
                                batch_size=batch_size, augment=AUGMENT_FULL,
                                mixed_precision=mixed, jit_compile=jit_compile,
                                steps_per_execution=steps_per_execution)


def timed_trainer(config):
  """The trainer `fkd_tf.train` builds for `config`, its pretrained weights copied in and
  its stem frozen as the run does (the head is not fitted: that costs minutes and changes
  no step time); returns (trainer, frozen layer count)."""
  train_lib.set_precision(config.mixed_precision)
  trainer = train_lib.build_trainer(config, steps_per_epoch=1000)
  frozen = 0
  if config.pretrained:
    pretrained_init.load_pretrained(trainer.network, config.pretrained)
  if config.freeze_until:
    frozen = pretrained_init.freeze_until(trainer.network, config.freeze_until)
  return trainer, frozen


def train_flops_per_image(network, frozen_layers=0):
  """FLOPs of one training image: forward x TRAIN_FLOPS_FACTOR for trained layers, forward
  only for a frozen prefix of `frozen_layers` layers.

  Below the first trained layer no gradient is needed at all (neither for weights nor for
  inputs), and the train step is a tf.function whose unused gradient ops Grappler prunes,
  so a frozen prefix costs its forward pass alone.
  """
  total = models.forward_flops(network)
  # forward_flops reads only `.layers`: the prefix's count comes from the same code.
  frozen = models.forward_flops(types.SimpleNamespace(layers=network.layers[:frozen_layers]))
  return models.TRAIN_FLOPS_FACTOR * (total - frozen) + frozen


def training_feeds(config):
  """{feed name: dataset} of the training batches: the real pipeline (the run's splits,
  shuffled, padded, prefetched; its decoded-face cache filled here, as after a run's
  first epoch) and one of its batches repeated from memory."""
  dataset = pipeline.make_dataset(
      config.tfrecord_dir, ",".join(config_lib.train_splits_of(config)), config.batch_size,
      training=True, seed=config.seed, drop_remainder=True)
  first = next(iter(dataset))  # fills the shuffle buffer, so the decoded-face cache
  return {FEEDS[0]: dataset.repeat(), FEEDS[1]: tf.data.Dataset.from_tensors(first).repeat()}


def interleaved_step_seconds(step_function, iterators, steps, block=1, warmup=2,
                             cpu_seconds=None):
  """Seconds of each call of one step function on each feed, the feeds taking turns.

  Args:
    step_function: iterator -> dict of tensors (Keras' `train_function`); one call is
      steps_per_execution train steps, waited for by reading its "loss".
    iterators: {feed name: iterator of its batches}.
    steps: timed calls per feed.
    block: calls per turn. Load that comes and goes then slows every feed alike (1:
      neighbouring calls, the closest in time, belong to different feeds).
    warmup: untimed calls per feed first (tracing, the first batches).
    cpu_seconds: a dict that receives {feed name: [this process' CPU seconds of each
      timed call]} (all threads): unlike wall time, hardly changed by other processes.
  Returns:
    {feed name: [seconds of each timed call]}.
  """
  for iterator in iterators.values():
    for _ in range(warmup):
      float(step_function(iterator)["loss"])
  seconds = {name: [] for name in iterators}
  cpu = {name: [] for name in iterators}
  while any(len(times) < steps for times in seconds.values()):
    for name, iterator in iterators.items():
      for _ in range(min(block, steps - len(seconds[name]))):
        start, start_cpu = time.perf_counter(), time.process_time()
        float(step_function(iterator)["loss"])
        seconds[name].append(time.perf_counter() - start)
        cpu[name].append(time.process_time() - start_cpu)
  if cpu_seconds is not None:
    cpu_seconds.update(cpu)
  return seconds


def training_figures(config, steps=20, peak_gflops=None, label=None):
  """Training images/s of one recipe from both feeds through the same compiled step.

  Both feeds go through the one `train_function` that `fit` runs (same trainer, same
  trace), so the cached batch differs from the pipeline only in where its batch comes
  from. Each figure is the median of `steps` calls.

  Returns:
    list of rows (one per feed): label, model, fed_from, images_per_s, ms_per_step,
    train_mflop_per_image, frozen_layers, epoch_s (the run's steps per epoch at this
    speed, training only), cpu_ms_per_step (this process' CPU time, all threads) and
    idle_images_per_s_at_most (that CPU time spread over every core: what an idle
    machine could reach), and with peak_gflops: bound_images_per_s, fraction_of_bound.
  """
  trainer, frozen = timed_trainer(config)
  try:
    trainer.make_train_function()
    iterators = {name: iter(feed) for name, feed in training_feeds(config).items()}
    cpu_seconds = {}
    seconds = interleaved_step_seconds(trainer.train_function, iterators, steps,
                                       cpu_seconds=cpu_seconds)
  finally:
    train_lib.set_precision(False)
  images_per_call = config.batch_size * config.steps_per_execution
  flops = train_flops_per_image(trainer.network, frozen)
  info = records.read_dataset_info(config.tfrecord_dir)
  faces = sum(info["splits"][s]["count"] for s in config_lib.train_splits_of(config))
  rows = []
  for name, times in seconds.items():
    per_call = float(np.median(times))
    cpu_per_call = float(np.median(cpu_seconds.get(name, times)))
    row = {"label": label or config.model, "model": config.model, "fed_from": name,
           "images_per_s": images_per_call / per_call,
           "ms_per_step": 1000 * per_call / config.steps_per_execution,
           "train_mflop_per_image": flops / 1e6, "frozen_layers": frozen,
           "epoch_s": math.ceil(faces / config.batch_size) * per_call /
                      config.steps_per_execution,
           "cpu_ms_per_step": 1000 * cpu_per_call / config.steps_per_execution,
           "idle_images_per_s_at_most": images_per_call * (os.cpu_count() or 1) /
                                        max(cpu_per_call, 1e-9)}
    if peak_gflops:
      row["bound_images_per_s"] = peak_gflops * 1e9 / flops
      row["fraction_of_bound"] = row["images_per_s"] / row["bound_images_per_s"]
    rows.append(row)
  return rows


# --- Serving: one face from a box, against dlib ---------------------------------------------

def _dlib_parts():
  """(dlib module, its 68-point predictor), or None without the `bench` extra."""
  try:
    import dlib  # pylint: disable=g-import-not-at-top
    import face_recognition_models  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  return dlib, dlib.shape_predictor(face_recognition_models.pose_predictor_model_location())


def read_rgb(path):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  return np.ascontiguousarray(np.asarray(Image.open(path).convert("RGB")))


def face_boxes(image_paths, keypoints_csv):
  """Each image's face box (x0, y0, x1, y1): its true keypoints' box from the CSV."""
  import pandas as pd  # pylint: disable=g-import-not-at-top
  table = pd.read_csv(keypoints_csv, index_col=0)
  boxes = []
  for path in image_paths:
    points = table.loc[os.path.basename(path)].to_numpy(np.float64).reshape(-1, 2)
    boxes.append(np.concatenate([points.min(axis=0), points.max(axis=0)]))
  return np.array(boxes)


def _ratio_figures(ours_ms, theirs_ms, prefix):
  return {f"{prefix}_p50_ms": float(np.percentile(ours_ms, 50)),
          f"{prefix}_mean_ms": float(np.mean(ours_ms)),
          "ratio_p50": float(np.percentile(ours_ms, 50) / np.percentile(theirs_ms, 50)),
          "ratio_mean": float(np.mean(ours_ms) / np.mean(theirs_ms))}


def _one_thread_model_and_dlib(saved_model):
  """(the API's model on one thread, dlib, its 68-point predictor), or None without dlib."""
  parts = _dlib_parts()
  if parts is None:
    return None
  from fkd_tf.inference import api  # pylint: disable=g-import-not-at-top
  return (api.load(saved_model, num_threads=1), *parts)


def face_figures(saved_model, image_paths, keypoints_csv, repeats=3):
  """One face as dlib is used: a decoded uint8 image and its face box in, 68 keypoints in
  image pixels out, one thread; fkd_tf's Python API and dlib's 68-point shape predictor
  timed on the same images and boxes, interleaved so that a busy machine slows both alike.

  Returns None when the `bench` extra (dlib) is not installed.
  """
  parts = _one_thread_model_and_dlib(saved_model)
  if parts is None:
    return None
  model, dlib, predictor = parts
  images = [read_rgb(p) for p in image_paths]
  boxes = face_boxes(image_paths, keypoints_csv)
  rectangles = [dlib.rectangle(*(int(round(v)) for v in box)) for box in boxes]
  ours, theirs = [], []
  for repeat in range(repeats + 1):
    for image, box, rectangle in zip(images, boxes, rectangles):
      start = time.perf_counter()
      model.predict(image, boxes=box[np.newaxis])
      middle = time.perf_counter()
      predictor(image, rectangle)
      end = time.perf_counter()
      if repeat:  # the first pass warms both up
        ours.append(1000 * (middle - start))
        theirs.append(1000 * (end - middle))
  return {"backend": model.backend, "faces": len(images), "calls": len(ours),
          "dlib_p50_ms": float(np.percentile(theirs, 50)),
          "dlib_mean_ms": float(np.mean(theirs)),
          **_ratio_figures(ours, theirs, "fkd_tf")}


# --- Serving: a whole photo, detection + keypoints, against dlib -----------------------------

def compose_photo(face_rgb, scale=2.0, grey=128):
  """A photo with one face: `face_rgb` pasted at the centre of a plain canvas `scale`
  times its size (a detector must find it; the canvas' size sets the detector's work)."""
  height, width = face_rgb.shape[:2]
  canvas = np.full((int(round(height * scale)), int(round(width * scale)), 3), grey,
                   np.uint8)
  top, left = (canvas.shape[0] - height) // 2, (canvas.shape[1] - width) // 2
  canvas[top:top + height, left:left + width] = face_rgb
  return canvas


def encode_png(rgb):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  buffer = io.BytesIO()
  Image.fromarray(rgb).save(buffer, format="PNG")
  return buffer.getvalue()


def photo_figures(saved_model, image_paths, scale=2.0, repeats=3, dlib_upsample=1):
  """A whole photo with one face, detection + 68 keypoints, one thread, three ways on the
  same photos, interleaved photo by photo:

    api: `fkd_tf.load(saved_model).detect(rgb)` (the LiteRT backend where the export has
      it; detection by BlazeFace's LiteRT file);
    signature: the SavedModel's `detect` signature on the photo's PNG bytes (decoding
      included, as TF Serving receives it), where the export has one;
    dlib: dlib's HOG frontal detector (`dlib_upsample` upsamplings: with 1, as dlib's own
      example and `detect.py` run it, it finds the test faces) + its 68-point predictor on
      the best box.

  Returns None when the `bench` extra (dlib) is not installed.
  """
  parts = _one_thread_model_and_dlib(saved_model)
  if parts is None:
    return None
  model, dlib, predictor = parts
  from fkd_tf.inference import api  # pylint: disable=g-import-not-at-top
  signature = versions.load_saved_model(saved_model).signatures.get(api.DETECT_SIGNATURE)
  detector = dlib.get_frontal_face_detector()
  photos = [compose_photo(read_rgb(p), scale) for p in image_paths]
  encoded = [encode_png(photo) for photo in photos]

  def run_dlib(photo):
    rectangles, scores, _ = detector.run(photo, dlib_upsample, 0.0)
    if rectangles:
      predictor(photo, rectangles[int(np.argmax(scores))])
    return len(rectangles)

  timings = {"api": [], "signature": [], "dlib": []}
  found = {"api": 0, "signature": 0, "dlib": 0}
  calls = {"api": lambda i: len(model.detect(photos[i])),
           "dlib": lambda i: run_dlib(photos[i])}
  if signature is not None:
    calls["signature"] = lambda i: int(signature(
        image_bytes=tf.constant([encoded[i]]))["num_detections"].numpy()[0])
  for repeat in range(repeats + 1):
    for i in range(len(photos)):
      for name, call in calls.items():
        start = time.perf_counter()
        faces = call(i)
        if repeat:  # the first pass warms every path up
          timings[name].append(1000 * (time.perf_counter() - start))
          found[name] += faces > 0
  photo_px = [p.shape[:2] for p in photos]
  figures = {"backend": model.backend, "photos": len(photos), "calls": len(timings["api"]),
             "canvas_scale": scale, "dlib_upsample": dlib_upsample,
             "median_photo_hw": [int(np.median([s[0] for s in photo_px])),
                                 int(np.median([s[1] for s in photo_px]))],
             "dlib_p50_ms": float(np.percentile(timings["dlib"], 50)),
             "dlib_mean_ms": float(np.mean(timings["dlib"])),
             "found_share": {k: v / max(1, len(timings[k])) for k, v in found.items()
                             if timings[k]},
             "api": _ratio_figures(timings["api"], timings["dlib"], "fkd_tf")}
  figures["signature"] = (_ratio_figures(timings["signature"], timings["dlib"], "fkd_tf")
                          if signature is not None else None)
  return figures


# --- Serving: the SavedModel's signatures ---------------------------------------------------

def savedmodel_figures(saved_model, image_paths, repeats=200):
  """Latency of one call with one face (p50, p99 ms) and per-face time at batch 64, for
  serving_default (bytes), with_boxes (bytes and a box) and preprocessed (a 90x90 frame);
  "bytes_over_preprocessed": batch 64 ms/face from bytes over preprocessed (what decoding
  and framing cost TF Serving's batches)."""
  model = versions.load_saved_model(saved_model)
  serve = model.signatures["serving_default"]
  with_boxes = model.signatures["with_boxes"]
  preprocessed = model.signatures["preprocessed"]
  encoded = [open(p, "rb").read() for p in image_paths]
  one = tf.constant(encoded[:1])
  frame = tf.random.uniform([1, 90, 90, 1])
  box = lambda n: tf.constant([[20.0, 20.0, 120.0, 120.0]] * n)
  figures = {}
  for name, call in (("bytes", lambda x: serve(image_bytes=x)),
                     ("bytes_with_boxes", lambda x: with_boxes(image_bytes=x,
                                                               boxes=box(x.shape[0]))),
                     ("preprocessed", lambda x: preprocessed(images=x))):
    single = frame if name == "preprocessed" else one
    for _ in range(10):
      call(single)
    times = []
    for _ in range(repeats):
      start = time.perf_counter()
      call(single)
      times.append(1000 * (time.perf_counter() - start))
    batch = (tf.random.uniform([64, 90, 90, 1]) if name == "preprocessed"
             else tf.constant((encoded * 64)[:64]))
    call(batch)
    start = time.perf_counter()
    for _ in range(10):
      call(batch)
    faces_per_s = 640 / (time.perf_counter() - start)
    figures[name] = {"p50_ms": float(np.percentile(times, 50)),
                     "p99_ms": float(np.percentile(times, 99)),
                     "batch64_faces_per_s": faces_per_s,
                     "batch64_ms_per_face": 1000.0 / faces_per_s}
  figures["bytes_over_preprocessed"] = (figures["bytes"]["batch64_ms_per_face"] /
                                        figures["preprocessed"]["batch64_ms_per_face"])
  figures["network_passes"] = network_passes(saved_model)
  return figures


def network_passes(saved_model):
  """[(model, passes)] per stage of an export's cascade (2 passes for a flip-averaged
  stage), from its assets.extra/fkd_tf.json; [] where it says nothing. `preprocessed` runs
  the last stage's network once; from bytes, a face runs all of these."""
  import json  # pylint: disable=g-import-not-at-top
  path = os.path.join(versions.resolve_saved_model(saved_model), "assets.extra", "fkd_tf.json")
  if not tf.io.gfile.exists(path):
    return []
  with tf.io.gfile.GFile(path) as f:
    stages = json.load(f).get("stages", [])
  return [(stage.get("model", "?"), 2 if stage.get("flip_average") else 1) for stage in stages]


def dlib_figures(image_paths, repeats=3):
  """dlib's 68-point shape predictor on the same faces (box: the whole image), ms/face.

  dlib runs on one thread. Returns None when the `bench` extra is not installed.
  """
  parts = _dlib_parts()
  if parts is None:
    return None
  dlib, predictor = parts
  from PIL import Image  # pylint: disable=g-import-not-at-top
  faces = [np.asarray(Image.open(p).convert("L")) for p in image_paths]
  times = []
  for _ in range(repeats):
    for face in faces:
      box = dlib.rectangle(0, 0, face.shape[1] - 1, face.shape[0] - 1)
      start = time.perf_counter()
      predictor(face, box)
      times.append(1000 * (time.perf_counter() - start))
  return {"p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99)),
          "faces": len(faces)}


def load_figures(saved_model, image_paths, calls=10000, batch_sizes=(1, 2, 5, 8, 3)):
  """Calls serving_default `calls` times with mixed batch sizes; RSS after warm-up (the
  first 10 % of calls) and at the end."""
  serve = versions.load_saved_model(saved_model).signatures["serving_default"]
  encoded = [open(p, "rb").read() for p in image_paths]
  warm = max(1, calls // 10)
  start = time.perf_counter()
  samples = []
  for call in range(calls):
    size = batch_sizes[call % len(batch_sizes)]
    offset = call % max(1, len(encoded) - size)
    serve(image_bytes=tf.constant(encoded[offset:offset + size]))
    if call + 1 == warm or (call + 1) % max(1, calls // 10) == 0:
      samples.append(rss_mb())
  return {"calls": calls, "seconds": time.perf_counter() - start,
          "rss_after_warmup_mb": samples[0], "rss_end_mb": samples[-1],
          "rss_max_mb": max(samples), "rss_growth_mb": samples[-1] - samples[0]}
