r"""The robustness check: val faces under six conditions photos from other sources bring.

  python -m tools.robustness_check --saved_model=models/fkd_default \
      --output=docs/robustness_fkd_default.json

Prints NME_io / FR@10 / AUC@10 per condition (`fkd_tf.evaluation.robustness` says what
each condition does) and their mean, through the Python API's whole-image call
(`fkd_tf.load(...).predict(image)`), and writes them as JSON.
"""

import io
import os
import sys

from absl import flags, logging

from fkd_tf.cli import command, common_flags

FLAGS = flags.FLAGS


def define_flags():
  common_flags.define_saved_model()
  common_flags.define_tfrecord_dir()
  flags.DEFINE_string("split", "val", "Which split's faces (val: persons never trained on).")
  flags.DEFINE_list("conditions", None, "Conditions to run (default: all).")
  flags.DEFINE_string("output", None, "JSON file for the figures (optional).")


def read_faces(tfrecord_dir, split):
  """[(PIL image, keypoints_px [68, 2])] of a split, in record order."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from fkd_tf.data import pipeline  # pylint: disable=g-import-not-at-top  (TensorFlow)
  faces = []
  for batch in pipeline.make_dataset(tfrecord_dir, split, 64, training=False,
                                     with_bytes=True, cache=False):
    for encoded, keypoints in zip(batch["image_bytes"].numpy(),
                                  batch["keypoints_px"].numpy()):
      faces.append((Image.open(io.BytesIO(encoded)).convert("RGB"), keypoints))
  return faces


def main(argv):
  del argv
  import fkd_tf  # pylint: disable=g-import-not-at-top
  from fkd_tf.evaluation import robustness  # pylint: disable=g-import-not-at-top
  from fkd_tf.utils import io_utils  # pylint: disable=g-import-not-at-top
  conditions = FLAGS.conditions or robustness.CONDITIONS
  unknown = sorted(set(conditions) - set(robustness.CONDITIONS))
  if unknown:
    sys.exit(f"error: --conditions: unknown {unknown}; choose from "
             f"{', '.join(robustness.CONDITIONS)}")
  faces = read_faces(FLAGS.tfrecord_dir, FLAGS.split)
  model = fkd_tf.load(FLAGS.saved_model)
  bar = io_utils.progress_bar(len(faces) * len(conditions), "face")
  results = robustness.evaluate_conditions(faces, model.predict, conditions,
                                           progress=bar.add)
  mean = sum(r["nme_io"] for r in results.values()) / len(results)
  worst = max(results, key=lambda c: results[c]["nme_io"])
  for condition, figures in results.items():
    print(f"{condition:10s} NME_io {figures['nme_io']:.2f}%  FR@10 {figures['fr10']:.1f}%  "
          f"AUC@10 {figures['auc10']:.3f}  ({figures['faces']} faces)")
  print(f"mean NME_io {mean:.2f}%, worst {worst} {results[worst]['nme_io']:.2f}%")
  if FLAGS.output:
    io_utils.write_json(FLAGS.output, {"saved_model": FLAGS.saved_model, "split": FLAGS.split,
                                       "conditions": results, "mean_nme_io": mean})
    logging.info("wrote %s", os.path.abspath(FLAGS.output))


def run():
  command.run(main, define_flags)


if __name__ == "__main__":
  run()
