r"""Sends images to a TF Serving REST endpoint and prints (or draws) the keypoints.

  python -m tools.serving_client --host=localhost --port=8501 --model_name=fkd_tf face.jpg

The request follows TF Serving's REST predict API (row format): binary inputs travel as
{"b64": ...} objects, one instance per image.

The library is `fkd_tf.serving.client`.
"""

import json
import os
import sys

from absl import app, flags
import numpy as np

from fkd_tf.cli import command
from fkd_tf.serving.client import ServingError, predict, predict_url

FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_string("host", "localhost", "TF Serving host.")
  flags.DEFINE_integer("port", 8501, "TF Serving REST port.")
  flags.DEFINE_string("model_name", "fkd_tf", "Model name in TF Serving's config.")
  flags.DEFINE_integer("version", None, "Model version (default: the server's latest).")
  flags.DEFINE_string("draw_dir", None, "Also draw the keypoints into PNGs here.")


def main(argv):
  paths = argv[1:]
  if not paths:
    raise app.UsageError("give image files")
  images = []
  for path in paths:
    try:
      with open(path, "rb") as f:
        images.append(f.read())
    except OSError as e:
      sys.exit(f"error: cannot read {path}: {e}")
  url = predict_url(FLAGS.host, FLAGS.port, FLAGS.model_name, FLAGS.version)
  try:
    keypoints = predict(images, FLAGS.host, FLAGS.port, FLAGS.model_name, FLAGS.version)
  except ServingError as e:
    sys.exit(f"error: {e}")
  except OSError as e:
    sys.exit(f"error: cannot reach {url}: {e}")
  for path, points in zip(paths, keypoints):
    print(json.dumps({"file": path, "keypoints": np.round(points, 2).tolist()}))
    if FLAGS.draw_dir:
      from PIL import Image  # pylint: disable=g-import-not-at-top
      from fkd_tf.inference import visualize  # pylint: disable=g-import-not-at-top
      from fkd_tf.utils import io_utils
      picture = np.asarray(Image.open(path).convert("RGB"))
      name = os.path.splitext(os.path.basename(path))[0] + ".png"
      io_utils.save_png(visualize.draw_keypoints(picture, [(points, visualize.PRED_COLOUR)]),
                        os.path.join(FLAGS.draw_dir, name))


def run():
  """The `fkd-serving-client` console command."""
  command.run(main, define_flags)


if __name__ == "__main__":
  run()
