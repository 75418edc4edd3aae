r"""Evaluates an exported model on a split: `python -m fkd_tf.evaluate --saved_model=DIR`.

  python -m fkd_tf.evaluate --saved_model=runs/base/export --split=test

prints NME_io, NME_box, FR@10, AUC@10, the mean pixel error and the SmoothL1 loss in the
original's units, and writes metrics_<split>.json, per_image_<split>.csv and
ced_<split>.png (default: beside the export, in eval_<split>/).
"""

import os

from absl import app, flags, logging
import numpy as np

from fkd_tf.cli import common_flags
from fkd_tf.evaluation import reports
from fkd_tf.inference import api
from fkd_tf.utils import io_utils
from fkd_tf.serving import versions

FLAGS = flags.FLAGS


def define_flags():
  common_flags.define_saved_model()
  common_flags.define_tfrecord_dir()
  flags.DEFINE_enum("split", "test", ["train", "val", "test"], "Split to evaluate.")
  flags.DEFINE_string("output_dir", None, "Where reports go (default: <saved_model>/../"
                      "eval_<split>).")
  flags.DEFINE_integer("batch_size", 64, "Faces per call.", lower_bound=1)
  flags.DEFINE_enum("boxes", "none", ["none", "true_keypoints"],
                    "'none': whole images in; 'true_keypoints': each face's true keypoint "
                    "box in as its face box (the with-box path, one refining pass for the "
                    "shipped model).")
  flags.DEFINE_enum("backend", "saved_model", ["saved_model", "litert"],
                    "Evaluate the SavedModel's serving graph, or the Python API's one-face "
                    "path on the export's LiteRT files (the same keypoints within 0.05 px).")


def main(argv):
  del argv
  saved_model = versions.resolve_saved_model(FLAGS.saved_model)
  suffix = ("_litert" if FLAGS.backend == "litert" else "") + (
      "_true_boxes" if FLAGS.boxes != "none" else "")
  # Beside the export folder: <run>/export/<version> reports into <run>/eval_<split>.
  # (abspath and normpath would mangle gs://... and ram://..., which need neither.)
  version = (saved_model.rstrip("/") if io_utils.is_remote(saved_model)
             else os.path.abspath(saved_model))
  output_dir = FLAGS.output_dir or os.path.join(
      os.path.dirname(os.path.dirname(version)), f"eval_{FLAGS.split}{suffix}")
  logging.info("evaluating %s on %s", saved_model, FLAGS.split)
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
  summary = reports.evaluate_split(
      predict_fn, FLAGS.tfrecord_dir, FLAGS.split,
      output_dir, FLAGS.batch_size, with_bytes=True,
      label=FLAGS.backend, extra={"saved_model": saved_model, "backend": FLAGS.backend})
  print(reports.format_summary(summary))
  print(f"report: {output_dir}")


def run():
  """The `fkd-evaluate` console command."""
  define_flags()
  app.run(main)


if __name__ == "__main__":
  run()
