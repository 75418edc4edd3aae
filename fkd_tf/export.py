r"""Exports finished runs as one SavedModel for TF Serving.

  python -m fkd_tf.export --model_dirs=runs/coarse,runs/best,runs/best --export_base=DIR

A refining run may repeat (it refines again); the first run must frame whole images.
"""

import dataclasses

from absl import app, flags

from fkd_tf.cli import common_flags
from fkd_tf.serving import run_folder
from fkd_tf.serving import saved_model
from fkd_tf.serving.module import stage_of

FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_list("model_dirs", None, "Finished runs, first stage first; a refining run "
                    "may repeat to refine more than once.")
  flags.DEFINE_string("export_base", None, "Where the numbered version folder goes.")
  common_flags.define_tfrecord_dir(extra_help=" Warm-up images come from it ('' for none).")
  flags.DEFINE_bool("flip_average", False, "Average each stage's prediction with its "
                    "prediction on the mirrored frame (twice the compute).")
  flags.DEFINE_bool("flip_average_last", False, "Flip-average the last stage only (the "
                    "shipped model: its final refining pass costs twice, the others once).")
  flags.DEFINE_bool("litert_float16", False, "Store the LiteRT files' weights in half "
                    "precision: half their size; LiteRT computes in float32 all the same.")
  flags.DEFINE_integer("box_passes", None, "How many refining stages run when a face box "
                       "is given (default: all); whole images always run every stage.",
                       lower_bound=1)
  flags.mark_flags_as_required(["model_dirs", "export_base"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  loaded = {}  # a run named twice is one network run twice, saved once
  for model_dir in FLAGS.model_dirs:
    if model_dir not in loaded:
      loaded[model_dir] = stage_of(*run_folder.load_network(model_dir))
  stages = [loaded[d] for d in FLAGS.model_dirs]
  if FLAGS.flip_average:
    stages = [dataclasses.replace(stage, flip_average=True) for stage in stages]
  elif FLAGS.flip_average_last:
    stages[-1] = dataclasses.replace(stages[-1], flip_average=True)
  if stages[0].region_margin is not None:
    raise app.UsageError(f"--model_dirs: {FLAGS.model_dirs[0]} is a refining stage; the "
                         "first stage must frame whole images")
  warmup = run_folder.warmup_images(FLAGS.tfrecord_dir) if FLAGS.tfrecord_dir else ()
  path = saved_model.export(stages, FLAGS.export_base,
                            metadata={"model_dirs": FLAGS.model_dirs}, warmup_images=warmup,
                            box_passes=FLAGS.box_passes,
                            litert_float16=FLAGS.litert_float16)
  print(f"exported {len(stages)} stage(s): {path}")


def run():
  """The `fkd-export` console command."""
  define_flags()
  app.run(main)


if __name__ == "__main__":
  run()
