r"""Keypoints for your own images and videos: `python -m fkd_tf.predict [flags] PATHS...`

  python -m fkd_tf.predict photos/                         # predictions/<name>.json, .png
  python -m fkd_tf.predict --output=preds.csv photos/      # one table for the whole folder
  python -m fkd_tf.predict --detect_faces=false crops/     # each image is one face crop
  python -m fkd_tf.predict --pts photos/                   # iBUG .pts beside each image
  python -m fkd_tf.predict clip.mp4                        # a row per frame, annotated video

Every face of every photo is found first (BlazeFace, --detector) and gets its box, score
and 68 keypoints; a photo without a face gets none. Video frames follow each face by its
keypoints and run the detector again only when a face is lost. PATHS are files or folders
(walked recursively, images and videos by extension; folders an earlier run wrote are
skipped). Images are predicted in batches; a progress bar counts images and video frames.
Per-file outputs go under --output_dir
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

from fkd_tf.cli import command, common_flags
from fkd_tf.inference import detect

FLAGS = flags.FLAGS


def define_flags():
  common_flags.define_saved_model()
  flags.DEFINE_string("output_dir", None, "Where per-file JSON, PNG (and CSV, annotated "
                      "video) go; default predictions/, or none when --output is given.")
  flags.DEFINE_string("output", None, "One table for all inputs: a .csv (a row per face: "
                      "file, frame, face, score, the detector's box x0, y0, x1, y1, then "
                      "keypoints x_0, y_0 ... y_67; files without a face have no row) or a "
                      ".jsonl (a JSON record per image or frame).")
  flags.DEFINE_bool("csv", False, "Also write a CSV per file in --output_dir.")
  flags.DEFINE_bool("pts", False, "Write iBUG .pts files beside the input images "
                    "(<stem>.pts; <stem>_1.pts ... when there are several faces).")
  flags.DEFINE_bool("overwrite_pts", False, "Replace .pts files already beside the images.")
  flags.DEFINE_bool("detect_faces", True, "Find every face first (--detector); "
                    "--detect_faces=false takes each whole image as one face crop.")
  flags.DEFINE_enum("detector", detect.DEFAULT_DETECTOR, list(detect.DETECTORS),
                    "Face detector for --detect_faces (see fkd_tf/inference/detect.py).")
  flags.DEFINE_integer("batch_size", 32, "Faces per call of the model.", lower_bound=1)


def _check_output_paths(output_dir, output):
  """The one clear error for an output path that cannot be used, before any work."""
  from fkd_tf.inference import prediction  # pylint: disable=g-import-not-at-top  (TensorFlow)
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


def _check_inputs_and_model(paths, output_dir):
  """One line, before any work, for the common mistakes: an output folder that is an input
  folder (its drawings would be written among, or over, the inputs), a run folder given as
  --saved_model, a detector whose package is missing."""
  if output_dir:
    for path in paths:
      if os.path.isdir(path) and os.path.realpath(path) == os.path.realpath(output_dir):
        sys.exit(f"error: --output_dir={output_dir} is an input folder; its drawings would "
                 "land among the inputs: choose another --output_dir")
  saved_model = FLAGS.saved_model
  if saved_model and "://" not in saved_model and not os.path.exists(saved_model):
    sys.exit(common_flags.path_error_line("saved_model", saved_model, "no such folder"))
  if (saved_model and os.path.isdir(saved_model)
      and not os.path.isfile(os.path.join(saved_model, "saved_model.pb"))
      and not any(name.isdigit() for name in os.listdir(saved_model))):
    hint = os.path.join(saved_model.rstrip("/"), "export")
    sys.exit(common_flags.path_error_line("saved_model", saved_model, "no SavedModel there")
             + (f"; did you mean --saved_model={hint}?" if os.path.isdir(hint) else ""))
  if FLAGS.detect_faces:
    missing = detect.missing_package(FLAGS.detector)
    if missing:
      sys.exit(f"error: --detect_faces: {missing}; or --detect_faces=false for face crops")


def main(argv):
  output_dir = FLAGS.output_dir or (None if FLAGS.output else "predictions")
  if len(argv) < 2:
    raise app.UsageError("give image or video files, or folders of them")
  _check_inputs_and_model(argv[1:], output_dir)
  _check_output_paths(output_dir, FLAGS.output)
  # pylint: disable=g-import-not-at-top  (TensorFlow after the flags: a fast --help)
  from fkd_tf.inference import api, prediction
  from fkd_tf.utils import io_utils
  files, errors = prediction.list_inputs(argv[1:], skip_folder=output_dir or "predictions")
  for error in errors:
    print(f"error: {error}", file=sys.stderr)
  if not files:
    sys.exit("error: no image or video to predict" + (" (see above)" if errors else ""))
  options = prediction.Options(output_dir=output_dir,
                    detector=FLAGS.detector if FLAGS.detect_faces else None,
                    write_csv=FLAGS.csv, write_pts=FLAGS.pts,
                    overwrite_pts=FLAGS.overwrite_pts, batch_size=FLAGS.batch_size,
                    inputs=frozenset(os.path.realpath(f) for f in files))
  model = api.load(FLAGS.saved_model)
  if output_dir:
    prediction.mark_output_folder(output_dir)
  names = dict(zip(files, prediction.output_names(files)))
  videos = [f for f in files if prediction.is_video(f)]
  images = [f for f in files if f not in set(videos)]
  frames = sum(max(1, prediction.video_frame_count(v)) for v in videos)
  progress = io_utils.progress_bar(len(images) + frames, "image" if not videos else "frame")
  results, stopped = [], None
  try:
    with (prediction.Table(FLAGS.output) if FLAGS.output
          else contextlib.nullcontext()) as table:
      try:
        for _, result in _run(model, images, videos, names, options, table, progress):
          results.append(result)
      except OSError as e:  # a full disk: keep the table of the files done, say it in a line
        stopped = (f"\nerror: {e.filename or 'writing'}: {e.strerror or e}; stopped after "
                   f"{len(results)} of {len(files)} files" + (
                       f" (their rows are in {FLAGS.output})" if FLAGS.output else ""))
  except OSError as e:
    sys.exit(f"\nerror: {e.filename or FLAGS.output}: {e.strerror or e}")
  if stopped:
    sys.exit(stopped)
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
  from fkd_tf.inference import prediction  # pylint: disable=g-import-not-at-top  (TensorFlow)
  for path, result in prediction.predict_images(model, images, [names[p] for p in images], options,
                                     table):
    progress.add(1)
    if isinstance(result, prediction.InputError):
      print(f"\nerror: {result}", file=sys.stderr)
      yield path, result
    else:
      yield path, [result]
  for path in videos:
    frames = [0]
    def on_frame():
      frames[0] += 1
      progress.add(1)
    try:
      result = prediction.predict_video(model, path, names[path], options, table,
                                        on_frame=on_frame)
    except prediction.InputError as e:
      print(f"\nerror: {e}", file=sys.stderr)
      result = e
    # The container's frame count is an estimate: settle the bar on what was read.
    expected = max(1, prediction.video_frame_count(path))
    if frames[0] < expected:
      progress.add(expected - frames[0])
    yield path, result


def run():
  """The `fkd-predict` console command."""
  command.run(main, define_flags)


if __name__ == "__main__":
  run()
