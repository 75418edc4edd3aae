r"""Keypoints for your own images and videos: `python -m fkd_tf.predict [flags] PATHS...`

  python -m fkd_tf.predict photos/                         # predictions/<name>.json, .png
  python -m fkd_tf.predict --output=preds.csv photos/      # one table for the whole folder
  python -m fkd_tf.predict --detect_faces group.jpg        # every face (BlazeFace boxes)
  python -m fkd_tf.predict --pts photos/                   # iBUG .pts beside each image
  python -m fkd_tf.predict clip.mp4                        # a row per frame, annotated video

PATHS are files or folders (walked recursively, images and videos by extension). Files are
predicted in batches; a progress bar counts them. Per-file outputs go under --output_dir
by the path relative to the inputs' common folder, extension kept (`a.png` and
`sub/a.jpg` give `a.png.json` and `sub/a.jpg.json`), so no two inputs share an output.
A file that is not a regular file, too large, or not an image the model reads (PNG, JPEG,
GIF, BMP) is reported by name and the rest continue; the exit status says some failed.
Videos need OpenCV (the `detect` extra).
"""

import contextlib
import os
import sys

from absl import app, flags

from fkd_tf.cli import common_flags
from fkd_tf.inference import api, detect, prediction
from fkd_tf.utils import io_utils

FLAGS = flags.FLAGS


def define_flags():
  common_flags.define_saved_model()
  flags.DEFINE_string("output_dir", None, "Where per-file JSON, PNG (and CSV, annotated "
                      "video) go; default predictions/, or none when --output is given.")
  flags.DEFINE_string("output", None, "One table for all inputs: a .csv (a row per face: "
                      "file, frame, face, score, region, x0, y0 ... y67; files without a "
                      "face have no row) or a .jsonl (a JSON record per image or frame).")
  flags.DEFINE_bool("csv", False, "Also write a CSV per file in --output_dir.")
  flags.DEFINE_bool("pts", False, "Write iBUG .pts files beside the input images "
                    "(<stem>.pts; <stem>_1.pts ... when there are several faces).")
  flags.DEFINE_bool("overwrite_pts", False, "Replace .pts files already beside the images.")
  flags.DEFINE_bool("detect_faces", False, "Find faces in full photos first (--detector); "
                    "without it the whole image is the face.")
  flags.DEFINE_enum("detector", detect.DEFAULT_DETECTOR, list(detect.DETECTORS),
                    "Face detector for --detect_faces (see fkd_tf/detect.py).")
  flags.DEFINE_integer("batch_size", 32, "Faces per call of the model.", lower_bound=1)


def _check_output_paths(output_dir, output):
  """The one clear error for an output path that cannot be used, before any work."""
  if output_dir:
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
      sys.exit(f"error: --output_dir={output_dir} is a file, not a folder")
    try:
      os.makedirs(output_dir, exist_ok=True)
    except OSError as e:
      sys.exit(f"error: --output_dir={output_dir}: cannot create it ({e.strerror})")
  if output:
    if not output.lower().endswith(prediction.TABLE_SUFFIXES):
      sys.exit(f"error: --output={output}: name a .csv or .jsonl file")
    if os.path.isdir(output):
      sys.exit(f"error: --output={output} is a folder, not a file")


def main(argv):
  output_dir = FLAGS.output_dir or (None if FLAGS.output else "predictions")
  _check_output_paths(output_dir, FLAGS.output)
  if len(argv) < 2:
    raise app.UsageError("give image or video files, or folders of them")
  files, errors = prediction.list_inputs(argv[1:], skip_folder=output_dir)
  for error in errors:
    print(f"error: {error}", file=sys.stderr)
  if not files:
    sys.exit("error: no image or video to predict" + (" (see above)" if errors else ""))
  options = prediction.Options(output_dir=output_dir,
                    detector=FLAGS.detector if FLAGS.detect_faces else None,
                    write_csv=FLAGS.csv, write_pts=FLAGS.pts,
                    overwrite_pts=FLAGS.overwrite_pts, batch_size=FLAGS.batch_size)
  model = api.load(FLAGS.saved_model)
  names = dict(zip(files, prediction.output_names(files)))
  videos = [f for f in files if f.lower().endswith(prediction.VIDEO_EXTENSIONS)]
  images = [f for f in files if f not in set(videos)]
  progress = io_utils.progress_bar(len(files), "file")
  with (prediction.Table(FLAGS.output) if FLAGS.output else contextlib.nullcontext()) as table:
    results = [result for _, result in _run(model, images, videos, names, options, table,
                                            progress)]
  done = [records for records in results if not isinstance(records, prediction.InputError)]
  failed = len(errors) + len(results) - len(done)
  faces = [sum(len(record["faces"]) for record in records) for records in done]
  print(f"{len(done)} files, {sum(faces)} faces"
        + (f", {faces.count(0)} files without a face" if faces.count(0) else ""))
  print("wrote " + ", ".join(p for p in (output_dir and output_dir.rstrip("/") + "/",
                                         FLAGS.output, FLAGS.pts and ".pts beside the images")
                             if p))
  if failed:
    sys.exit(f"{failed} of {len(files) + len(errors)} inputs could not be predicted")


def _run(model, images, videos, names, options, table, progress):
  """Yields (path, [records] or prediction.InputError) per file, printing errors as they come."""
  for path, result in prediction.predict_images(model, images, [names[p] for p in images], options,
                                     table):
    progress.add(1)
    if isinstance(result, prediction.InputError):
      print(f"\nerror: {result}", file=sys.stderr)
      yield path, result
    else:
      yield path, [result]
  for path in videos:
    try:
      result = prediction.predict_video(model, path, names[path], options, table)
    except prediction.InputError as e:
      print(f"\nerror: {e}", file=sys.stderr)
      result = e
    progress.add(1)
    yield path, result


def run():
  """The `fkd-predict` console command."""
  define_flags()
  app.run(main)


if __name__ == "__main__":
  run()
