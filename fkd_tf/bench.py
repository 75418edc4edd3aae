r"""Benchmarks, all measured in one run so that ratios hold on any machine.

  python -m fkd_tf.bench --threads=1                 # the headline ratios against dlib
  python -m fkd_tf.bench --what=train --steps=10     # training img/s of every model
  python -m fkd_tf.bench --what=train --models= \
      --train_flagfiles=configs/facemesh_refine.flags  # a real recipe, frozen stem included

Parts (--what):
  face        one face from a given box: fkd_tf.load().predict(image, boxes=) / dlib's
              68-point predictor, same images and boxes, one thread.
  photo       a whole photo with one face (a test face on a plain canvas --photo_scale its
              size), detection + keypoints: the API's detect(image) / dlib's HOG detector +
              68-point predictor, and the SavedModel's `detect` signature / the same dlib.
  savedmodel  the SavedModel's signatures: one-face latency, per-face time at batch 64, and
              bytes-in / preprocessed at batch 64 (TF Serving's batches).
  dlib, load  dlib's predictor alone; memory over --calls calls.
  matmul, pipeline, train
              the float32 matmul peak; input-pipeline images/s; training images/s of each
              model in --models and each recipe in --train_flagfiles, fed from the real
              pipeline and from one cached batch through the same compiled step, as a
              fraction of the bound peak / (training FLOPs per image).
"""

import math
import os
import sys

from absl import flags

from fkd_tf.cli import command, common_flags

FLAGS = flags.FLAGS
SERVING_PARTS = {"face", "photo", "savedmodel", "dlib", "load"}


def define_flags():
  flags.DEFINE_list("what", ["face", "photo", "savedmodel"],
                    "Parts to run: face, photo, savedmodel, dlib, load, matmul, pipeline, "
                    "train (the module's docstring says what each times).")
  common_flags.define_tfrecord_dir()
  flags.DEFINE_list("models", None, "Models to time in training, each with the bench's "
                    "full augmentation (default: every model in fkd_tf.core.models.MODELS).")
  flags.DEFINE_list("train_flagfiles", [], "Training recipes to time as `fkd_tf.train` "
                    "would run them: their model, augmentation, batch, precision, "
                    "pretrained weights and frozen layers (e.g. configs/facemesh_refine"
                    ".flags).")
  flags.DEFINE_list("variants", ["float32"], "Training variants of --models, each a "
                    "+-joined set of: float32, mixed (bf16/fp16), jit, spe8 "
                    "(steps_per_execution 8).")
  flags.DEFINE_integer("batch_size", 64, "Training batch size of --models.")
  flags.DEFINE_integer("steps", 20, "Timed training steps per figure (each feed).")
  flags.DEFINE_float("seconds", 4.0, "Seconds to time the input pipeline for.")
  flags.DEFINE_integer("threads", 0, "intra- and inter-op threads (0: TensorFlow's choice).")
  common_flags.define_saved_model(extra_help=" Timed by face, photo, savedmodel and load. "
                                  "Default: the shipped model.")
  flags.DEFINE_string("images", "data/raw/test", "Folder of face images for the serving "
                      "parts.")
  flags.DEFINE_string("keypoints_csv", "data/raw/test_frames_keypoints.csv",
                      "Their keypoints: 'face' gives both predictors each face's keypoint box.")
  flags.DEFINE_integer("faces", 64, "How many images of --images to time ('photo': a "
                       "quarter of them).")
  flags.DEFINE_float("photo_scale", 2.0, "'photo': the canvas' side over the face image's.")
  flags.DEFINE_integer("dlib_upsample", 1, "'photo': upsamplings of dlib's HOG detector (1, "
                       "as dlib's example runs it, finds every test face; 0 is faster and "
                       "misses small ones).")
  flags.DEFINE_integer("calls", 10000, "Calls for 'load' (mixed batch sizes 1-8).")
  flags.DEFINE_string("json_out", None, "Also write the figures here as JSON.")


def _check_inputs():
  """One line naming the flag and the folder for inputs that are not there, before any work."""
  if set(FLAGS.what) & SERVING_PARTS and not os.path.isdir(FLAGS.images):
    sys.exit("error: " + common_flags.missing_default("images", FLAGS.images, "image folder"))
  if "face" in FLAGS.what and not os.path.isfile(FLAGS.keypoints_csv):
    sys.exit("error: " + common_flags.missing_default("keypoints_csv", FLAGS.keypoints_csv,
                                                      "keypoints CSV"))
  if {"pipeline", "train"} & set(FLAGS.what) and not os.path.isdir(FLAGS.tfrecord_dir):
    sys.exit("error: " + common_flags.missing_default("tfrecord_dir", FLAGS.tfrecord_dir,
                                                      "records"))
  for path in FLAGS.train_flagfiles if "train" in FLAGS.what else []:
    if not os.path.isfile(path):
      sys.exit(f"error: --train_flagfiles: no file {path} (looked in {os.path.abspath(path)})")


def _training_configs(speed, models):
  """(label, TrainConfig) of each model variant and each recipe to time."""
  from fkd_tf.cli import train_flags  # pylint: disable=g-import-not-at-top
  configs = []
  for model in models:
    for variant in FLAGS.variants:
      parts = set(variant.split("+"))
      configs.append((f"{model} {variant}", speed.model_config(
          FLAGS.tfrecord_dir, model, FLAGS.batch_size, mixed="mixed" in parts,
          jit_compile="jit" in parts, steps_per_execution=8 if "spe8" in parts else 1)))
  for path in FLAGS.train_flagfiles:
    configs.append((os.path.basename(path), train_flags.config_from_flagfile(
        path, model_dir="unused", tfrecord_dir=FLAGS.tfrecord_dir)))
  return configs


def _print_train_row(row):
  bound = (f", {row['fraction_of_bound']:.2f} of the bound {row['bound_images_per_s']:.0f}"
           if "fraction_of_bound" in row else "")
  frozen = f", {row['frozen_layers']} layers frozen" if row["frozen_layers"] else ""
  print(f"train {row['label']} from {row['fed_from']}: {row['images_per_s']:.0f} img/s "
        f"({row['ms_per_step']:.0f} ms/step; {row['train_mflop_per_image']:.0f} MFLOP/img"
        f"{frozen}){bound}; an epoch's steps: {row['epoch_s']:.0f} s; CPU "
        f"{row['cpu_ms_per_step']:.0f} ms/step, so at most "
        f"{row['idle_images_per_s_at_most']:.0f} img/s on an idle machine")


def _train(speed, report):
  models = FLAGS.models
  if models is None:
    from fkd_tf.core import models as models_lib  # pylint: disable=g-import-not-at-top
    models = sorted(models_lib.MODELS)
  report["train"] = []
  print("training FLOPs per image: 3x forward for trained layers, 1x (forward only) for a "
        "frozen stem; cached and augmented go through the same compiled step, interleaved")
  for label, config in _training_configs(speed, models):
    for row in speed.training_figures(config, FLAGS.steps, report.get("matmul_gflops"),
                                      label):
      report["train"].append(row)
      _print_train_row(row)
  if "pipeline" in report:
    fed = [r["images_per_s"] for r in report["train"] if r["fed_from"] != "cached batch"]
    report["pipeline_over_training"] = report["pipeline"]["host_decode_pad"] / max(fed)
    print(f"host pipeline / fastest training: {report['pipeline_over_training']:.1f}x")


def _print_ratio(what, ours_name, ours_ms, theirs_name, theirs_ms, ratio, mean_ratio, calls):
  print(f"{what}: {ours_name} p50 {ours_ms:.2f} ms / {theirs_name} p50 {theirs_ms:.2f} ms = "
        f"{ratio:.2f}x (means: {mean_ratio:.2f}x) over {calls} calls")


def _serving(speed, report, images):
  if "face" in FLAGS.what:
    face = report["face"] = speed.face_figures(FLAGS.saved_model, images, FLAGS.keypoints_csv)
    if face is None:
      print("face: skipped (pip install -e '.[bench]' for dlib-bin and its 68-point model)")
    else:
      _print_ratio("one face from a box, 1 thread", f"fkd_tf.load().predict ({face['backend']})",
                   face["fkd_tf_p50_ms"], "dlib 68-point predictor", face["dlib_p50_ms"],
                   face["ratio_p50"], face["ratio_mean"], face["calls"])
  if "photo" in FLAGS.what:
    photos = images[:max(1, len(images) // 4)]
    photo = report["photo"] = speed.photo_figures(FLAGS.saved_model, photos,
                                                  FLAGS.photo_scale,
                                                  dlib_upsample=FLAGS.dlib_upsample)
    if photo is None:
      print("photo: skipped (pip install -e '.[bench]' for dlib-bin and its 68-point model)")
    else:
      height, width = photo["median_photo_hw"]
      found = ", ".join(f"{k} {v:.0%}" for k, v in photo["found_share"].items())
      what = (f"a photo with one face ({photo['canvas_scale']:g}x canvas, median {width}x"
              f"{height} px), detection + keypoints, 1 thread")
      dlib_name = f"dlib HOG (upsample {photo['dlib_upsample']}) + 68-point predictor"
      api_fig = photo["api"]
      _print_ratio(what, f"fkd_tf.load().detect ({photo['backend']})",
                   api_fig["fkd_tf_p50_ms"], dlib_name, photo["dlib_p50_ms"],
                   api_fig["ratio_p50"], api_fig["ratio_mean"], photo["calls"])
      if photo["signature"] is None:
        print("  SavedModel detect signature: none in this export (export with a detector)")
      else:
        sig = photo["signature"]
        _print_ratio(what, "SavedModel 'detect' signature (PNG bytes)", sig["fkd_tf_p50_ms"],
                     dlib_name, photo["dlib_p50_ms"], sig["ratio_p50"], sig["ratio_mean"],
                     photo["calls"])
      print(f"  photos with a face found: {found}")
  if "savedmodel" in FLAGS.what:
    figures = report["savedmodel"] = speed.savedmodel_figures(FLAGS.saved_model, images)
    for name in ("bytes", "bytes_with_boxes", "preprocessed"):
      fig = figures[name]
      print(f"savedmodel {name}: one call of one face p50 {fig['p50_ms']:.2f} ms, p99 "
            f"{fig['p99_ms']:.2f} ms; batch 64: {fig['batch64_ms_per_face']:.2f} ms/face")
    print(f"TF Serving batch 64: bytes in {figures['bytes']['batch64_ms_per_face']:.2f} "
          f"ms/face / preprocessed {figures['preprocessed']['batch64_ms_per_face']:.2f} "
          f"ms/face = {figures['bytes_over_preprocessed']:.2f}x")
    if figures["network_passes"]:
      passes = " + ".join(f"{m}" + (f" x{n}" if n > 1 else "")
                          for m, n in figures["network_passes"])
      print(f"  (from bytes a face runs {sum(n for _, n in figures['network_passes'])} "
            f"network passes: {passes}; preprocessed runs the last network once)")
  if "dlib" in FLAGS.what:
    report["dlib"] = speed.dlib_figures(images)
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
    report["load"] = speed.load_figures(FLAGS.saved_model, images, FLAGS.calls)
    print("load: {calls} calls in {seconds:.0f} s; RSS {rss_after_warmup_mb:.0f} MB after "
          "warm-up, {rss_end_mb:.0f} MB at the end (max {rss_max_mb:.0f}, growth "
          "{rss_growth_mb:+.1f} MB)".format(**report["load"]))


def main(argv):
  del argv
  _check_inputs()
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from fkd_tf.evaluation import speed  # pylint: disable=g-import-not-at-top
  from fkd_tf.utils import io_utils  # pylint: disable=g-import-not-at-top
  FLAGS.saved_model = common_flags.saved_model_or_shipped(FLAGS.saved_model)
  if FLAGS.threads:
    tf.config.threading.set_intra_op_parallelism_threads(FLAGS.threads)
    tf.config.threading.set_inter_op_parallelism_threads(FLAGS.threads)
  report = {"cpu": speed.cpu_description(), "threads": FLAGS.threads or "default",
            "load_average_start": speed.load_average()}
  print(f"cpu: {report['cpu']['model']}, {report['cpu']['cores']} cores, "
        f"flags {' '.join(report['cpu']['flags'])}; threads {report['threads']}; "
        f"load average {report['load_average_start']:.2f}")
  if {"matmul", "train"} & set(FLAGS.what):  # training figures need the bound
    peak = report["matmul_gflops"] = speed.matmul_gflops()
    print(f"float32 matmul peak: {peak:.1f} GFLOP/s")
  if "pipeline" in FLAGS.what:
    report["pipeline"] = speed.pipeline_images_per_second(FLAGS.tfrecord_dir,
                                                          FLAGS.batch_size, FLAGS.seconds)
    print("input pipeline: {host_decode_pad:.0f} img/s host decode+pad, "
          "{with_full_augmentation:.0f} img/s with full augmentation".format(
              **report["pipeline"]))
  if "train" in FLAGS.what:
    _train(speed, report)
  if set(FLAGS.what) & SERVING_PARTS:
    images = sorted(os.path.join(FLAGS.images, n) for n in os.listdir(FLAGS.images))
    _serving(speed, report, images[:FLAGS.faces])
  report["load_average_end"] = speed.load_average()
  if not math.isnan(report["load_average_end"]):
    print(f"load average at the end: {report['load_average_end']:.2f}")
  if FLAGS.json_out:
    io_utils.write_json(FLAGS.json_out, report)


def run():
  """The `fkd-bench` console command."""
  command.run(main, define_flags)


if __name__ == "__main__":
  run()
