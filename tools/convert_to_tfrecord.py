r"""Converts the official CSVs and images into TFRecord shards for train, val and test.

  python -m tools.convert_to_tfrecord --data_dir=data/raw --output_dir=data/tfrecords

The validation split takes about --val_fraction of the training *persons* (a person's
frames never straddle two splits), chosen by --split_seed. Every bad row stops the run
with an error naming the CSV, its line and the image; the output folder is written
under a temporary name and swapped in only when complete. The library is
`fkd_tf.data.convert`.
"""

import sys

from absl import flags

from fkd_tf.cli import command

FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_string("data_dir", "data/raw", "Folder in the official layout: "
                      "training/, test/ and the two *_frames_keypoints.csv files.")
  flags.DEFINE_string("output_dir", "data/tfrecords", "Where shards and dataset_info.json go; "
                      "never --data_dir itself, a folder above it or one inside it.")
  flags.DEFINE_float("val_fraction", 0.1, "Share of training persons held out for "
                     "validation.")
  flags.DEFINE_integer("split_seed", 0, "Seed of the person split.")
  flags.DEFINE_integer("examples_per_shard", 1000, "Faces per shard at most.")
  flags.DEFINE_bool("overwrite", False, "Replace an output folder that holds other files.")


def main(argv):
  del argv
  from fkd_tf.data.convert import ConversionError, convert  # pylint: disable=g-import-not-at-top  (TensorFlow after the flags)
  try:
    info = convert(FLAGS.data_dir, FLAGS.output_dir, FLAGS.val_fraction, FLAGS.split_seed,
                   FLAGS.examples_per_shard, FLAGS.overwrite)
  except ConversionError as e:
    sys.exit(f"error: {e}")
  counts = ", ".join(f"{s} {v['count']} faces / {v['persons']} persons"
                     for s, v in info["splits"].items())
  print(f"wrote {FLAGS.output_dir}: {counts}")


def run():
  """The `fkd-convert` console command."""
  command.run(main, define_flags)


if __name__ == "__main__":
  run()
