r"""Redraws every picture in docs/ that shows the shipped model, from that model.

  python -m tools.make_docs_pictures --saved_model=models/fkd_default --output_dir=docs

Writes, each from the export given (so a new model redraws them all):
  detect_example.png   fkd_tf.load(saved_model).detect on a real group photo (--photo),
                       drawn with fkd_tf.inference.visualize.draw_faces
  val_faces_panel.png  the first 8 validation faces (TensorBoard's panel): truth green,
                       the whole-image `predict` magenta, each labelled with its NME_io
  ced_shipped.png      cumulative error curves of the export's evaluation reports
                       (--reports: the per-image CSVs `fkd_tf.evaluate` wrote), MediaPipe's
                       val figure marked
  inspect_shipped/     `python -m fkd_tf.inspect --saved_model=... --output_dir=...`
  pareto_val.png       tools.pareto_plot over --pareto_rows
--pictures picks some of them (detect,val_faces,ced,inspect,pareto).
"""

import os
import shutil
import subprocess
import sys

from absl import flags

from fkd_tf.cli import command, common_flags

FLAGS = flags.FLAGS
PICTURES = ("detect", "val_faces", "ced", "inspect", "pareto")
# A group photo from dlib's example images (tracked, never trained on): 7 faces, 500x375.
DEFAULT_PHOTO = "data/cross_source/sources/dlib/2007_007763.jpg"
# MediaPipe Face Mesh on val, from the independent evaluator: NME_io, FR@10, AUC@10.
MEDIAPIPE_VAL = {"nme_io": 0.0668, "failure_rate_10": 0.087, "auc_10": 0.351}
PANEL_FACES = 8


def default_reports(saved_model):
  """The val and test per-image CSVs `fkd_tf.evaluate` writes beside an export's versions:
  <base>/eval_val/per_image_val.csv, <base>/eval_test/per_image_test.csv."""
  base = saved_model.rstrip("/")
  if os.path.basename(base).isdigit():  # a version folder: its reports sit by the base
    base = os.path.dirname(base)
  return [os.path.join(base, f"eval_{split}", f"per_image_{split}.csv")
          for split in ("val", "test")]


def detect_picture(model, photo_path, upscale=2, radius=1.5):
  """(picture, faces): `model.detect` on the photo, drawn with `visualize.draw_faces`
  (dots of `radius` px: a group photo's faces are small, and larger dots hide the eyes)."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from fkd_tf.inference import visualize  # pylint: disable=g-import-not-at-top
  faces = model.detect(photo_path)
  with Image.open(photo_path) as photo:
    return visualize.draw_faces(photo.convert("RGB"), faces, upscale=upscale,
                                radius=radius), faces


def first_faces(tfrecord_dir, split="val", count=PANEL_FACES):
  """The first `count` faces of a split in the records' order (TensorBoard's panel takes
  the same): dict of images (list of [H, W, 1] uint8, unpadded), image_bytes (list of
  encoded bytes), true_px [count, 68, 2], file_name (list of str)."""
  from fkd_tf.data import pipeline  # pylint: disable=g-import-not-at-top
  batch = next(iter(pipeline.make_dataset(tfrecord_dir, split, count, training=False,
                                          with_names=True, with_bytes=True, cache=False)))
  return {"images": [image[:size[0], :size[1]] for image, size in
                     zip(batch["image"].numpy(), batch["image_size"].numpy())],
          "image_bytes": list(batch["image_bytes"].numpy()),
          "true_px": batch["keypoints_px"].numpy(),
          "file_name": [name.decode() for name in batch["file_name"].numpy()]}


def faces_panel(faces, pred_px, title):
  """`visualize.face_panel` of `first_faces` and their predictions [N, 68, 2]."""
  from fkd_tf.inference import visualize  # pylint: disable=g-import-not-at-top
  return visualize.face_panel(faces["images"], faces["true_px"], pred_px, columns=4,
                              captions=faces["file_name"], title=title)


def report_curves(csv_paths):
  """{label: per-face NME_io} from per-image CSVs (`fkd_tf.evaluate`'s), one per split;
  the label names the split (from the file name), the count and the mean."""
  import pandas as pd  # pylint: disable=g-import-not-at-top
  curves = {}
  for path in csv_paths:
    nmes = pd.read_csv(path)["nme_io"].to_numpy()
    split = os.path.splitext(os.path.basename(path))[0].replace("per_image_", "")
    curves[f"{split}, {len(nmes)} faces: NME_io {100 * nmes.mean():.2f} %"] = nmes
  return curves


def ced_picture(curves, title):
  """The error curves with MediaPipe's val figure marked where its FR@10 puts it."""
  from fkd_tf.inference import visualize  # pylint: disable=g-import-not-at-top
  share = 1.0 - MEDIAPIPE_VAL["failure_rate_10"]
  marker = (f"MediaPipe, val: FR@10 {100 * MEDIAPIPE_VAL['failure_rate_10']:.1f} %, "
            f"AUC@10 {MEDIAPIPE_VAL['auc_10']:.3f}", 0.10, share)
  return visualize.cumulative_error_plot(curves, markers=[marker], title=title,
                                         size=(720, 480))


def run_inspect(saved_model, output_dir, tfrecord_dir):
  """`python -m fkd_tf.inspect` into output_dir, its TensorBoard logs left out (docs/
  holds pictures, not event files)."""
  subprocess.run([sys.executable, "-m", "fkd_tf.inspect", f"--saved_model={saved_model}",
                  f"--output_dir={output_dir}", f"--tfrecord_dir={tfrecord_dir}"],
                 check=True)
  shutil.rmtree(os.path.join(output_dir, "logs"), ignore_errors=True)


def define_flags():
  common_flags.define_saved_model()
  common_flags.define_tfrecord_dir()
  flags.DEFINE_string("output_dir", "docs", "Where the pictures go.")
  flags.DEFINE_list("pictures", list(PICTURES), "Which to redraw: " + ",".join(PICTURES))
  flags.DEFINE_string("photo", DEFAULT_PHOTO, "The group photo for detect_example.png.")
  flags.DEFINE_list("reports", None, "Per-image CSVs of `fkd_tf.evaluate` for the curves "
                    "(default: <export base>/eval_val/per_image_val.csv and eval_test's).")
  flags.DEFINE_string("pareto_rows", "docs/pareto_rows.json", "Rows of tools.pareto_plot.")


def main(argv):
  del argv
  unknown = set(FLAGS.pictures) - set(PICTURES)
  if unknown:
    sys.exit(f"error: --pictures: unknown {sorted(unknown)}; choose from {PICTURES}")
  import fkd_tf  # pylint: disable=g-import-not-at-top  (TensorFlow after the flags)
  from fkd_tf.serving import versions  # pylint: disable=g-import-not-at-top
  from fkd_tf.utils import io_utils  # pylint: disable=g-import-not-at-top
  saved_model = common_flags.saved_model_or_shipped(FLAGS.saved_model)
  version_dir = versions.resolve_saved_model(saved_model)
  name = (f"{common_flags.export_name(saved_model)} version "
          f"{os.path.basename(version_dir.rstrip('/'))}")
  out = lambda file_name: os.path.join(FLAGS.output_dir, file_name)
  model = fkd_tf.load(saved_model) if {"detect", "val_faces"} & set(FLAGS.pictures) else None
  if "detect" in FLAGS.pictures:
    picture, faces = detect_picture(model, FLAGS.photo)
    io_utils.save_png(picture, out("detect_example.png"))
    print(f"detect_example.png: {len(faces)} faces, scores "
          f"{min(f.score for f in faces):.2f}-{max(f.score for f in faces):.2f}")
  if "val_faces" in FLAGS.pictures:
    faces = first_faces(FLAGS.tfrecord_dir)
    pred_px = model.predict(faces["image_bytes"])
    io_utils.save_png(faces_panel(faces, pred_px, f"{name}, whole-image predict"),
                      out("val_faces_panel.png"))
    print(f"val_faces_panel.png: {', '.join(faces['file_name'])}")
  if "ced" in FLAGS.pictures:
    curves = report_curves(FLAGS.reports or default_reports(saved_model))
    io_utils.save_png(ced_picture(curves, f"{name}: whole image, fkd_tf.evaluate"),
                      out("ced_shipped.png"))
    print(f"ced_shipped.png: {'; '.join(curves)}")
  if "inspect" in FLAGS.pictures:
    run_inspect(saved_model, out("inspect_shipped"), FLAGS.tfrecord_dir)
  if "pareto" in FLAGS.pictures:
    from tools import pareto_plot  # pylint: disable=g-import-not-at-top
    rows = pareto_plot.read_rows(FLAGS.pareto_rows)
    io_utils.save_png(pareto_plot.plot(rows), out("pareto_val.png"))
    print(f"pareto_val.png: {len(rows)} rows")
  print(f"wrote {FLAGS.output_dir}")


def run():
  command.run(main, define_flags)


if __name__ == "__main__":
  run()
