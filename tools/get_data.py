r"""Brings the facial keypoints data set into place, in the official layout.

  python -m tools.get_data --source=../shared/data/facial_keypoints --output_dir=data/raw
  python -m tools.get_data --output_dir=data/raw          # downloads the official zip

A local source is only read, never modified. Counts are checked (3462 training, 770
test images), every image must be a readable picture, and the result appears under
--output_dir only when complete.

The library is `fkd_tf.data.download`.
"""

import sys

from absl import flags

from fkd_tf.cli import command
from fkd_tf.data.download import OFFICIAL_URL, OFFICIAL_ZIP_SHA256, DataError, get_data

FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_string("source", None, "A local folder in the official layout (e.g. "
                      "../shared/data/facial_keypoints); when unset, the official zip is "
                      "downloaded.")
  flags.DEFINE_string("output_dir", "data/raw", "Where the data set goes (outside --source).")
  flags.DEFINE_string("url", OFFICIAL_URL, "The official zip's address.")
  flags.DEFINE_string("sha256", OFFICIAL_ZIP_SHA256, "The zip's expected sha256; the "
                      "download is refused when it differs. Unset: only counts are checked.")


def main(argv):
  del argv
  try:
    get_data(FLAGS.output_dir, FLAGS.source, FLAGS.url, sha256=FLAGS.sha256)
  except (DataError, OSError) as e:
    sys.exit(f"error: {e}")


def run():
  """The `fkd-get-data` console command."""
  command.run(main, define_flags)


if __name__ == "__main__":
  run()
