r"""Evaluates an exported model on a split: `python -m fkd_tf.evaluate --saved_model=DIR`.

  python -m fkd_tf.evaluate --saved_model=runs/base/export --split=test

prints NME_io, NME_box, FR@10, AUC@10, the mean pixel error and the SmoothL1 loss in the
original's units, and writes metrics_<split>.json, per_image_<split>.csv and
ced_<split>.png (default: ./eval_<model name>_<split> in the current folder).
"""

import sys

from absl import flags, logging
import numpy as np

from fkd_tf.cli import command, common_flags

FLAGS = flags.FLAGS


def define_flags():
  common_flags.define_saved_model()
  common_flags.define_tfrecord_dir()
  flags.DEFINE_enum("split", "test", ["train", "val", "test"], "Split to evaluate.")
  flags.DEFINE_string("output_dir", None, "Where reports go (default: ./eval_<model name>_"
                      "<split> in the current folder).")
  flags.DEFINE_integer("batch_size", 64, "Faces per call.", lower_bound=1)
  flags.DEFINE_enum("boxes", "none", ["none", "true_keypoints"],
                    "'none': whole images in; 'true_keypoints': each face's true keypoint "
                    "box in as its face box (the with-box path, one refining pass for the "
                    "shipped model).")
  flags.DEFINE_enum("backend", "saved_model", ["saved_model", "litert"],
                    "Evaluate the SavedModel's serving graph, or the Python API's one-face "
                    "path on the export's LiteRT files (the same keypoints within 0.05 px).")
  flags.DEFINE_list("canvas", [], "The canvas check instead: each face of --split pasted "
                    "at a random spot of a plain canvas this many times its image's size "
                    "(e.g. 1,2,3,4), through the Python API's detect; NME_io over faces "
                    "found, FR@10 with a missed face failed, % found, and false faces on "
                    "--canvas_backgrounds faceless images. Writes canvas_<split>.json/.md.")
  flags.DEFINE_integer("canvas_backgrounds", 100, "Faceless images for --canvas.",
                       lower_bound=0)
  flags.DEFINE_integer("canvas_seed", 0, "Seed of --canvas: spots, colours, backgrounds.")


def record_problem(message):
  """The one line of a pipeline check's error that says which record and what is wrong
  ("[the record of] [x.jpg] [holds ...]" → "the record of x.jpg holds ..."); the whole
  first line of any other error."""
  for line in message.splitlines():
    if "[the record of]" in line:
      line = line[line.index("[the record of]"):]
      return " ".join(part.strip("[] ") for part in line.split("] ["))
  return message.splitlines()[0] if message else "an unusable record"


def main(argv):
  del argv
  # pylint: disable=g-import-not-at-top  (TensorFlow after the flags: a fast --help)
  import tensorflow as tf
  from fkd_tf.data import records
  from fkd_tf.evaluation import reports
  from fkd_tf.inference import api
  from fkd_tf.serving import versions
  saved_model = versions.resolve_saved_model(
      common_flags.saved_model_or_shipped(FLAGS.saved_model))
  suffix = ("_litert" if FLAGS.backend == "litert" else "") + (
      "_true_boxes" if FLAGS.boxes != "none" else "")
  # In the current folder, never beside the export: the shipped model's lies inside the
  # package (site-packages after `pip install .`).
  output_dir = FLAGS.output_dir or (
      f"eval_{common_flags.export_name(FLAGS.saved_model)}_{FLAGS.split}{suffix}")
  logging.info("evaluating %s on %s", saved_model, FLAGS.split)
  if FLAGS.canvas:
    _canvas_check(saved_model, output_dir.replace("eval_", "canvas_", 1)
                  if not FLAGS.output_dir else output_dir)
    return
  if FLAGS.backend == "litert" or FLAGS.boxes != "none":
    model = api.load(saved_model, backend=FLAGS.backend)
    def predict_fn(batch):
      boxes = None
      if FLAGS.boxes == "true_keypoints":
        truth = batch["keypoints_px"].numpy()
        boxes = np.concatenate([truth.min(axis=1), truth.max(axis=1)], axis=-1)
      return model.predict(list(batch["image_bytes"].numpy()), boxes=boxes)
  else:
    predict_fn = reports.saved_model_predictor(saved_model)
  try:
    summary = reports.evaluate_split(
        predict_fn, FLAGS.tfrecord_dir, FLAGS.split,
        output_dir, FLAGS.batch_size, with_bytes=True,
        label=FLAGS.backend, extra={"saved_model": saved_model, "backend": FLAGS.backend})
  except records.DatasetError as e:  # e.g. data/tfrecords outside a checkout: one line
    sys.exit(common_flags.path_error_line("tfrecord_dir", FLAGS.tfrecord_dir, e))
  except tf.errors.InvalidArgumentError as e:  # a record the pipeline's checks refused
    sys.exit(f"error: --tfrecord_dir={FLAGS.tfrecord_dir} --split={FLAGS.split}: "
             f"{record_problem(e.message)}")
  print(reports.format_summary(summary))
  print(f"report: {output_dir}")


def _canvas_check(saved_model, output_dir):
  """--canvas: the split's faces on larger canvases through `detect` (evaluation/canvas.py)."""
  # pylint: disable=g-import-not-at-top  (TensorFlow after the flags: a fast --help)
  import os
  from fkd_tf.data import records
  from fkd_tf.evaluation import canvas
  from fkd_tf.inference import api, detect
  from fkd_tf.utils import io_utils
  try:
    scales = [float(v) for v in FLAGS.canvas]
  except ValueError:
    sys.exit(f"error: --canvas={','.join(FLAGS.canvas)}: give canvas sizes such as 1,2,3,4")
  if min(scales) < 1:
    sys.exit("error: --canvas: a canvas is at least the image's size (1)")
  missing = detect.missing_package(api.DETECTOR)
  if missing:
    sys.exit(f"error: --canvas: {missing}")
  try:
    faces = canvas.split_faces(FLAGS.tfrecord_dir, FLAGS.split, FLAGS.batch_size)
  except records.DatasetError as e:
    sys.exit(common_flags.path_error_line("tfrecord_dir", FLAGS.tfrecord_dir, e))
  model = api.load(saved_model, backend=FLAGS.backend)
  result = canvas.run(model.detect, faces, [int(s) if s.is_integer() else s for s in scales],
                      FLAGS.canvas_backgrounds, FLAGS.canvas_seed)
  result.update({"split": FLAGS.split, "saved_model": saved_model,
                 "backend": model.backend})
  table = canvas.format_table(result)
  io_utils.write_json(os.path.join(output_dir, f"canvas_{FLAGS.split}.json"), result)
  io_utils.write_text(os.path.join(output_dir, f"canvas_{FLAGS.split}.md"), table + "\n")
  print(f"canvas check, {FLAGS.split} ({len(faces)} faces), {model.backend} backend:")
  print(table)
  print(f"report: {output_dir}")


def run():
  """The `fkd-evaluate` console command."""
  command.run(main, define_flags)


if __name__ == "__main__":
  run()
