r"""Benchmarks, all measured in one run so that ratios hold on any machine.

  python -m fkd_tf.bench --what=matmul,pipeline,train --json_out=bench.json

Prints a table: the machine's float32 matmul peak; input-pipeline images/s (host decode
and pad, then the full batched augmentation); training images/s of each model fed from
the real pipeline and from one cached batch, each as a fraction of the bound
peak / (3 x forward FLOPs); SavedModel latency and throughput.
"""

import os
import platform
import sys
import time

from absl import flags
import numpy as np
import tensorflow as tf

from fkd_tf.cli import command, common_flags
from fkd_tf.utils import io_utils
from fkd_tf.core import augment, models
from fkd_tf.core import config as config_lib
from fkd_tf.data import pipeline
from fkd_tf.serving import versions
from fkd_tf.training import train_lib

AUGMENT_FULL = augment.AugmentConfig(max_rotation_deg=15, min_scale=0.9, max_scale=1.1,
                                     max_shift=4, flip_prob=0.5, brightness=0.15,
                                     contrast=0.3, gamma=0.25, blur_prob=0.2, erase_prob=0.2)


def cpu_description():
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


def training_images_per_second(tfrecord_dir, model, batch_size=64, steps=20, mixed=False,
                               steps_per_execution=1, cached=False, jit_compile=False):
  """Training throughput with the augmentation inside the step, as `fkd_tf.train` runs."""
  train_lib.set_precision(mixed)
  config = config_lib.TrainConfig(tfrecord_dir=tfrecord_dir, model_dir="", model=model,
                                  batch_size=batch_size, augment=AUGMENT_FULL,
                                  mixed_precision=mixed, jit_compile=jit_compile,
                                  steps_per_execution=steps_per_execution)
  trainer = train_lib.build_trainer(config, steps_per_epoch=steps)
  dataset = pipeline.make_dataset(tfrecord_dir, "train", batch_size, training=True,
                                        drop_remainder=True)
  if cached:
    dataset = dataset.take(1).cache().repeat()
  else:
    dataset = dataset.repeat()
  trainer.fit(dataset, steps_per_epoch=steps_per_execution * 3, epochs=1, verbose=0)  # warm
  start = time.perf_counter()
  trainer.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0)
  rate = steps * batch_size / (time.perf_counter() - start)
  train_lib.set_precision(False)
  return rate


def savedmodel_figures(saved_model, image_paths, repeats=200):
  """Latency of one call with one face (p50, p99 ms) and per-face time at batch 64, for
  serving_default (bytes), with_boxes (bytes and a box) and preprocessed (a 90x90 frame)."""
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
  return figures


def face_boxes(image_paths, keypoints_csv):
  """Each image's face box (x0, y0, x1, y1): its true keypoints' box from the CSV."""
  import pandas as pd  # pylint: disable=g-import-not-at-top
  table = pd.read_csv(keypoints_csv, index_col=0)
  boxes = []
  for path in image_paths:
    points = table.loc[os.path.basename(path)].to_numpy(np.float64).reshape(-1, 2)
    boxes.append(np.concatenate([points.min(axis=0), points.max(axis=0)]))
  return np.array(boxes)


def face_figures(saved_model, image_paths, keypoints_csv, repeats=3):
  """One face as dlib is used: a decoded uint8 image and its face box in, 68 keypoints in
  image pixels out, one thread; fkd_tf's Python API and dlib's 68-point shape predictor
  timed on the same images and boxes, interleaved so that a busy machine slows both alike.

  Returns None when the `bench` extra (dlib) is not installed.
  """
  try:
    import dlib  # pylint: disable=g-import-not-at-top
    import face_recognition_models  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from fkd_tf.inference import api  # pylint: disable=g-import-not-at-top
  model = api.load(saved_model, num_threads=1)
  predictor = dlib.shape_predictor(face_recognition_models.pose_predictor_model_location())
  images = [np.ascontiguousarray(np.asarray(Image.open(p).convert("RGB")))
            for p in image_paths]
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
          "fkd_tf_p50_ms": float(np.percentile(ours, 50)),
          "fkd_tf_mean_ms": float(np.mean(ours)),
          "dlib_p50_ms": float(np.percentile(theirs, 50)),
          "dlib_mean_ms": float(np.mean(theirs)),
          "ratio_p50": float(np.percentile(ours, 50) / np.percentile(theirs, 50)),
          "ratio_mean": float(np.mean(ours) / np.mean(theirs))}


def dlib_figures(image_paths, repeats=3):
  """dlib's 68-point shape predictor on the same faces (box: the whole image), ms/face.

  dlib runs on one thread. Returns None when the `bench` extra is not installed.
  """
  try:
    import dlib  # pylint: disable=g-import-not-at-top
    import face_recognition_models  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  from PIL import Image  # pylint: disable=g-import-not-at-top
  predictor = dlib.shape_predictor(face_recognition_models.pose_predictor_model_location())
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


def rss_mb():
  """Resident memory of this process, MB (Linux)."""
  with open("/proc/self/status") as f:
    for line in f:
      if line.startswith("VmRSS:"):
        return int(line.split()[1]) / 1024.0
  return float("nan")


def load_figures(saved_model, image_paths, calls=10000, batch_sizes=(1, 2, 5, 8, 3)):
  """Calls serving_default `calls` times with mixed batch sizes; RSS after warm-up (the
  first 10 % of calls) and at the end."""
  serve = versions.load_saved_model(saved_model).signatures[
      "serving_default"]
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


FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_list("what", ["face", "savedmodel"],
                    "Parts to run: face (one face, image + box in, against dlib), "
                    "savedmodel, dlib, load, matmul, pipeline, train.")
  common_flags.define_tfrecord_dir()
  flags.DEFINE_list("models", ["ppbnet"], "Models to time in training.")
  flags.DEFINE_list("variants", ["float32"], "Training variants to time, each a +-joined "
                    "set of: float32, mixed (bf16/fp16), jit, spe8 (steps_per_execution 8).")
  flags.DEFINE_integer("batch_size", 64, "Training batch size.")
  flags.DEFINE_integer("steps", 20, "Timed training steps per figure.")
  flags.DEFINE_float("seconds", 4.0, "Seconds to time the input pipeline for.")
  flags.DEFINE_integer("threads", 0, "intra- and inter-op threads (0: TensorFlow's choice).")
  common_flags.define_saved_model(extra_help=" Timed by 'savedmodel' and 'load'.")
  flags.DEFINE_string("images", "data/raw/test", "Folder of face images for 'face', "
                      "'savedmodel' and 'load'.")
  flags.DEFINE_string("keypoints_csv", "data/raw/test_frames_keypoints.csv",
                      "Their keypoints: 'face' gives both predictors each face's keypoint box.")
  flags.DEFINE_integer("faces", 64, "How many images of --images to time.")
  flags.DEFINE_integer("calls", 10000, "Calls for 'load' (mixed batch sizes 1-8).")
  flags.DEFINE_string("json_out", None, "Also write the figures here as JSON.")


def _check_inputs():
  """One line naming the flag and the folder for inputs that are not there, before any work."""
  needs_images = set(FLAGS.what) & {"face", "savedmodel", "dlib", "load"}
  if needs_images and not os.path.isdir(FLAGS.images):
    sys.exit("error: " + common_flags.missing_default("images", FLAGS.images, "image folder"))
  if "face" in FLAGS.what and not os.path.isfile(FLAGS.keypoints_csv):
    sys.exit("error: " + common_flags.missing_default("keypoints_csv", FLAGS.keypoints_csv,
                                                      "keypoints CSV"))
  if {"pipeline", "train"} & set(FLAGS.what) and not os.path.isdir(FLAGS.tfrecord_dir):
    sys.exit("error: " + common_flags.missing_default("tfrecord_dir", FLAGS.tfrecord_dir,
                                                      "records"))


def main(argv):
  del argv
  _check_inputs()
  FLAGS.saved_model = common_flags.saved_model_or_shipped(FLAGS.saved_model)
  if FLAGS.threads:
    tf.config.threading.set_intra_op_parallelism_threads(FLAGS.threads)
    tf.config.threading.set_inter_op_parallelism_threads(FLAGS.threads)
  report = {"cpu": cpu_description(), "threads": FLAGS.threads or "default"}
  print(f"cpu: {report['cpu']['model']}, {report['cpu']['cores']} cores, "
        f"flags {' '.join(report['cpu']['flags'])}")
  peak = None
  if "matmul" in FLAGS.what:
    peak = report["matmul_gflops"] = matmul_gflops()
    print(f"float32 matmul peak: {peak:.1f} GFLOP/s")
  if "pipeline" in FLAGS.what:
    report["pipeline"] = pipeline_images_per_second(FLAGS.tfrecord_dir, FLAGS.batch_size,
                                                    FLAGS.seconds)
    print("input pipeline: {host_decode_pad:.0f} img/s host decode+pad, "
          "{with_full_augmentation:.0f} img/s with full augmentation".format(
              **report["pipeline"]))
  if "train" in FLAGS.what:
    report["train"] = []
    for model in FLAGS.models:
      flops = models.TRAIN_FLOPS_FACTOR * models.forward_flops(models.build(model))
      for variant in FLAGS.variants:
        parts = set(variant.split("+"))
        for cached in (False, True):
          rate = training_images_per_second(
              FLAGS.tfrecord_dir, model, FLAGS.batch_size, FLAGS.steps, "mixed" in parts,
              steps_per_execution=8 if "spe8" in parts else 1, cached=cached,
              jit_compile="jit" in parts)
          row = {"model": model, "variant": variant,
                 "fed_from": "cached batch" if cached else "augmented pipeline",
                 "images_per_s": rate, "train_mflop_per_image": flops / 1e6}
          if peak:
            row["bound_images_per_s"] = peak * 1e9 / flops
            row["fraction_of_bound"] = rate / row["bound_images_per_s"]
          report["train"].append(row)
          bound = (f", {row['fraction_of_bound']:.2f} of the bound "
                   f"{row['bound_images_per_s']:.0f}") if peak else ""
          print(f"train {model} {variant} from {row['fed_from']}: {rate:.0f} img/s{bound}")
    if "pipeline" in FLAGS.what:
      fed = [r["images_per_s"] for r in report["train"] if r["fed_from"] != "cached batch"]
      report["pipeline_over_training"] = report["pipeline"]["host_decode_pad"] / max(fed)
      print(f"host pipeline / fastest training: {report['pipeline_over_training']:.1f}x")
  images = sorted(os.path.join(FLAGS.images, n) for n in os.listdir(FLAGS.images))[
      :FLAGS.faces] if set(FLAGS.what) & {"face", "savedmodel", "dlib", "load"} else []
  if "face" in FLAGS.what:
    report["face"] = face_figures(FLAGS.saved_model, images, FLAGS.keypoints_csv)
    if report["face"] is None:
      print("face: skipped (pip install -e '.[bench]' for dlib-bin and its 68-point model)")
    else:
      print("one face, decoded image + box in, 1 thread: fkd_tf.load().predict ({backend}) "
            "p50 {fkd_tf_p50_ms:.3f} ms, dlib shape predictor p50 {dlib_p50_ms:.3f} ms; "
            "ratio {ratio_p50:.2f}x (means: {ratio_mean:.2f}x) over {calls} calls".format(
                **report["face"]))
  if "savedmodel" in FLAGS.what:
    report["savedmodel"] = savedmodel_figures(FLAGS.saved_model, images)
    for name, fig in report["savedmodel"].items():
      print(f"savedmodel {name}: one call of one face p50 {fig['p50_ms']:.2f} ms, p99 "
            f"{fig['p99_ms']:.2f} ms; batch 64: {fig['batch64_ms_per_face']:.2f} ms/face")
  if "dlib" in FLAGS.what:
    report["dlib"] = dlib_figures(images)
    if report["dlib"] is None:
      print("dlib: skipped (pip install -e '.[bench]' for dlib-bin and its 68-point model)")
    else:
      print("dlib 68-point predictor: one face p50 {p50_ms:.2f} ms, p99 {p99_ms:.2f} ms "
            "(one thread)".format(**report["dlib"]))
      if "savedmodel" in report:
        ratio = report["savedmodel"]["bytes"]["p50_ms"] / report["dlib"]["p50_ms"]
        report["savedmodel_over_dlib"] = ratio
        print(f"one face, SavedModel from bytes / dlib: {ratio:.2f}x")
  if "load" in FLAGS.what:
    report["load"] = load_figures(FLAGS.saved_model, images, FLAGS.calls)
    print("load: {calls} calls in {seconds:.0f} s; RSS {rss_after_warmup_mb:.0f} MB after "
          "warm-up, {rss_end_mb:.0f} MB at the end (max {rss_max_mb:.0f}, growth "
          "{rss_growth_mb:+.1f} MB)".format(**report["load"]))
  if FLAGS.json_out:
    io_utils.write_json(FLAGS.json_out, report)


def run():
  """The `fkd-bench` console command."""
  command.run(main, define_flags)


if __name__ == "__main__":
  run()
