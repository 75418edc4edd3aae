r"""Exports finished runs as one SavedModel for TF Serving.

  python -m fkd_tf.export --model_dirs=runs/coarse,runs/best,runs/best --export_base=DIR
  python -m fkd_tf.export --flagfile=configs/export_fkd_default.flags   # the shipped model

A refining run may repeat (it refines again); the first run must frame whole images.
Warm-up requests for TF Serving come from --tfrecord_dir's val split; without records
there the export has none (one warning line).
"""

import dataclasses
import errno
import sys

from absl import app, flags, logging

from fkd_tf.cli import command, common_flags

FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_list("model_dirs", None, "Finished runs, first stage first; a refining run "
                    "may repeat to refine more than once.")
  flags.DEFINE_string("export_base", None, "Where the numbered version folder goes.")
  common_flags.define_tfrecord_dir(extra_help=" Warm-up images come from its val split "
                                   "('' for none; without records there, none).")
  flags.DEFINE_bool("flip_average", False, "Average each stage's prediction with its "
                    "prediction on the mirrored frame (twice the compute).")
  flags.DEFINE_bool("flip_average_last", False, "Flip-average the last stage only (the "
                    "shipped model: its final refining pass costs twice, the others once).")
  flags.DEFINE_bool("litert_float16", False, "Store the LiteRT files' weights in half "
                    "precision: half their size; LiteRT computes in float32 all the same.")
  flags.DEFINE_integer("box_passes", None, "How many refining stages run when a face box "
                       "is given (default: all); whole images always run every stage.",
                       lower_bound=1)
  flags.DEFINE_enum("detector", "blazeface", ["blazeface", "none"], "Face detector inside "
                    "the SavedModel's `detect` signature (whole photos in, every face's box, "
                    "score and keypoints out); 'none' exports without that signature.")
  flags.mark_flags_as_required(["model_dirs", "export_base"])


def os_error_line(error, flag_name, path):
  """One line for an OSError while writing under --<flag_name>=<path>: what, where, the fix."""
  reason = error.strerror or str(error)
  where = f" ({error.filename})" if error.filename else ""
  hint = {errno.ENOSPC: "free some space or choose another folder",
          errno.EROFS: "choose a writable folder",
          errno.EACCES: "choose a writable folder"}.get(error.errno, "check the folder")
  return f"error: --{flag_name}={path}: cannot write: {reason}{where}; {hint}"


def _as_os_error(error):
  """The OSError a tf.errors.OpError from tf.io.gfile stands for (errno by its code)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  code = {tf.errors.NotFoundError: errno.ENOENT, tf.errors.PermissionDeniedError: errno.EACCES,
          tf.errors.ResourceExhaustedError: errno.ENOSPC,
          tf.errors.FailedPreconditionError: errno.EROFS}.get(type(error), errno.EIO)
  return OSError(code, error.message)


def _warmup_images(tfrecord_dir, given):
  """Encoded val images for TF Serving's warm-up; () without records, unless asked for."""
  from fkd_tf.data import records  # pylint: disable=g-import-not-at-top  (TensorFlow)
  from fkd_tf.serving import run_folder  # pylint: disable=g-import-not-at-top
  if not tfrecord_dir:
    return ()
  try:
    return run_folder.warmup_images(tfrecord_dir)
  except (records.DatasetError, OSError) as e:
    if given:  # the user named the folder: say why it cannot serve
      sys.exit(common_flags.path_error_line("tfrecord_dir", tfrecord_dir, e))
    logging.warning("no warm-up requests in the export: %s", common_flags.missing_default(
        "tfrecord_dir", tfrecord_dir, "records"))
    return ()


def _stages(model_dirs):
  """The served stages of the runs, a run named twice loaded once."""
  from fkd_tf.serving import run_folder  # pylint: disable=g-import-not-at-top  (TensorFlow)
  from fkd_tf.serving.module import stage_of  # pylint: disable=g-import-not-at-top
  loaded = {}  # a run named twice is one network run twice, saved once
  for model_dir in model_dirs:
    if model_dir not in loaded:
      try:
        loaded[model_dir] = stage_of(*run_folder.load_network(model_dir))
      except (run_folder.RunFolderError, OSError) as e:
        sys.exit(f"error: --model_dirs: {e}")
  return [loaded[d] for d in model_dirs]


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  stages = _stages(FLAGS.model_dirs)
  if FLAGS.flip_average:
    stages = [dataclasses.replace(stage, flip_average=True) for stage in stages]
  elif FLAGS.flip_average_last:
    stages[-1] = dataclasses.replace(stages[-1], flip_average=True)
  if stages[0].framing.region_margin is not None:
    raise app.UsageError(f"--model_dirs: {FLAGS.model_dirs[0]} is a refining stage; the "
                         "first stage must frame whole images")
  warmup = _warmup_images(FLAGS.tfrecord_dir, given=FLAGS["tfrecord_dir"].present)
  # pylint: disable=g-import-not-at-top  (TensorFlow after the flags: a fast --help)
  import tensorflow as tf
  from fkd_tf.serving import saved_model
  try:
    path = saved_model.export(stages, FLAGS.export_base,
                              metadata={"model_dirs": FLAGS.model_dirs},
                              warmup_images=warmup, box_passes=FLAGS.box_passes,
                              litert_float16=FLAGS.litert_float16,
                              detector=None if FLAGS.detector == "none" else FLAGS.detector)
  except OSError as e:  # a read-only folder or a full disk: one line, not a traceback
    logging.debug("the failure in full", exc_info=True)  # shown with --verbosity=1
    sys.exit(os_error_line(e, "export_base", FLAGS.export_base))
  except tf.errors.OpError as e:  # the same through tf.io.gfile (any file system)
    logging.debug("the failure in full", exc_info=True)
    sys.exit(os_error_line(_as_os_error(e), "export_base", FLAGS.export_base))
  print(f"exported {len(stages)} stage(s): {path}")


def run():
  """The `fkd-export` console command."""
  command.run(main, define_flags)


if __name__ == "__main__":
  run()
