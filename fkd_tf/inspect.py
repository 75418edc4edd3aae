r"""Looks inside a trained network: first-layer filters, feature maps, worst faces.

  python -m fkd_tf.inspect --model_dir=runs/base [--image=face.jpg] [--worst=12]
  python -m fkd_tf.inspect --saved_model=models/fkd_default   # writes ./inspect_fkd_default

See `fkd_tf.evaluation.inspection` for what it writes.
"""

import json
import os
import sys

from absl import flags

from fkd_tf.cli import command, common_flags

FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_string("model_dir", None, "A finished training run.")
  common_flags.define_saved_model(" Or this export instead of --model_dir: its first "
                                  "stage is inspected.")
  common_flags.define_tfrecord_dir(None, " Default: the run's own, or data/tfrecords for "
                                   "--saved_model.")
  flags.DEFINE_string("image", None, "Face image for the feature maps (default: the first "
                      "test face).")
  flags.DEFINE_integer("worst", 12, "How many worst faces to draw.")
  flags.DEFINE_string("output_dir", None, "Default: <model_dir>/inspect, or "
                      "./inspect_<export name> in the current folder for --saved_model.")
  flags.register_multi_flags_validator(
      ["model_dir", "saved_model"], lambda v: bool(v["model_dir"]) != bool(v["saved_model"]),
      message="give exactly one of --model_dir and --saved_model")


def _run_args():
  """What `inspection.inspect_run` needs besides the kernels, from --model_dir or
  --saved_model; (kernels, layer_name, args)."""
  # The current folder, never beside the export, which may be the shipped model inside
  # site-packages.
  # pylint: disable=g-import-not-at-top  (TensorFlow after the flags: a fast --help)
  from fkd_tf.core.framing import Framing
  from fkd_tf.evaluation import inspection, reports
  from fkd_tf.serving import run_folder, versions
  from fkd_tf.utils import io_utils
  if FLAGS.model_dir:
    network, config = run_folder.load_network(FLAGS.model_dir)
    kernels, layer_name = inspection.first_conv_kernels(network)
    return kernels, layer_name, dict(
        rescale_size=config.augment.rescale_size,
        predict_fn=reports.network_predictor(network, Framing.of_config(config)),
        tfrecord_dir=FLAGS.tfrecord_dir or config.tfrecord_dir,
        output_dir=FLAGS.output_dir or os.path.join(FLAGS.model_dir, "inspect"),
        log_dir=os.path.join(FLAGS.model_dir, "logs"))
  saved_model = versions.resolve_saved_model(FLAGS.saved_model)
  kernels, layer_name = inspection.saved_model_first_conv(saved_model)
  first_stage = json.loads(io_utils.read_bytes(
      os.path.join(saved_model, "assets.extra", "fkd_tf.json")))["stages"][0]
  output_dir = FLAGS.output_dir or f"inspect_{common_flags.export_name(FLAGS.saved_model)}"
  return kernels, layer_name, dict(
      rescale_size=Framing.from_json(first_stage).rescale_size,
      predict_fn=reports.saved_model_predictor(saved_model),
      tfrecord_dir=FLAGS.tfrecord_dir or common_flags.DEFAULT_TFRECORD_DIR,
      output_dir=output_dir, log_dir=os.path.join(output_dir, "logs"), with_bytes=True)


def _check_inputs():
  """One line naming the flag for a missing image or records folder, before any work."""
  if FLAGS.image and not os.path.isfile(FLAGS.image):
    sys.exit(f"error: --image={FLAGS.image}: no such file")
  if FLAGS.saved_model and not FLAGS.tfrecord_dir and not os.path.isdir(
      common_flags.DEFAULT_TFRECORD_DIR):
    sys.exit("error: " + common_flags.missing_default(
        "tfrecord_dir", common_flags.DEFAULT_TFRECORD_DIR, "records"))


def main(argv):
  del argv
  _check_inputs()
  image_bytes = open(FLAGS.image, "rb").read() if FLAGS.image else None
  from fkd_tf.data import records  # pylint: disable=g-import-not-at-top  (TensorFlow)
  from fkd_tf.evaluation import inspection  # pylint: disable=g-import-not-at-top
  from fkd_tf.serving import run_folder  # pylint: disable=g-import-not-at-top
  try:
    kernels, layer_name, args = _run_args()
    counts, chosen = inspection.inspect_run(kernels, layer_name, image_bytes=image_bytes,
                                            worst=FLAGS.worst, **args)
  except (records.DatasetError, run_folder.RunFolderError, FileNotFoundError) as e:
    sys.exit(f"error: {e}")
  print(f"first layer: {counts['edge']} edge, {counts['blur']} blur, {counts['other']} other")
  print(f"worst face: {chosen[0]['file_name']} NME_io {100 * chosen[0]['nme_io']:.1f}%")
  print(f"wrote {args['output_dir']}")


def run():
  """The `fkd-inspect` console command."""
  command.run(main, define_flags)


if __name__ == "__main__":
  run()
