r"""Sends images to a TF Serving REST endpoint and prints (or draws) the keypoints.

  python -m tools.serving_client --host=localhost --port=8501 --model_name=fkd_tf face.jpg

The request follows TF Serving's REST predict API (row format): binary inputs travel as
{"b64": ...} objects, one instance per image.
"""

import base64
import json
import os
import sys
import urllib.request

from absl import app, flags
import numpy as np


def build_request(images, signature_name="serving_default"):
  """The JSON body of a predict request for encoded images (bytes)."""
  return {"signature_name": signature_name,
          "instances": [{"image_bytes": {"b64": base64.b64encode(b).decode("ascii")}}
                        for b in images]}


def predict_url(host, port, model_name, version=None):
  version_part = f"/versions/{version}" if version else ""
  return f"http://{host}:{port}/v1/models/{model_name}{version_part}:predict"


def parse_response(body):
  """Keypoints [N, 68, 2] from a row-format response (one output: bare predictions)."""
  predictions = body["predictions"]
  if predictions and isinstance(predictions[0], dict):
    predictions = [p["keypoints"] for p in predictions]
  return np.asarray(predictions, np.float32)


def predict(images, host, port, model_name, version=None, timeout=30.0):
  request = urllib.request.Request(
      predict_url(host, port, model_name, version),
      data=json.dumps(build_request(images)).encode("utf-8"),
      headers={"Content-Type": "application/json"})
  with urllib.request.urlopen(request, timeout=timeout) as response:
    return parse_response(json.load(response))


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
  images = [open(p, "rb").read() for p in paths]
  try:
    keypoints = predict(images, FLAGS.host, FLAGS.port, FLAGS.model_name, FLAGS.version)
  except OSError as e:
    sys.exit(f"error: cannot reach {predict_url(FLAGS.host, FLAGS.port, FLAGS.model_name)}: "
             f"{e}")
  for path, points in zip(paths, keypoints):
    print(json.dumps({"file": path, "keypoints": np.round(points, 2).tolist()}))
    if FLAGS.draw_dir:
      from PIL import Image  # pylint: disable=g-import-not-at-top
      from fkd_tf import io_utils, visualize  # pylint: disable=g-import-not-at-top
      picture = np.asarray(Image.open(path).convert("RGB"))
      name = os.path.splitext(os.path.basename(path))[0] + ".png"
      io_utils.save_png(visualize.draw_keypoints(picture, [(points, visualize.PRED_COLOUR)]),
                        os.path.join(FLAGS.draw_dir, name))


if __name__ == "__main__":
  define_flags()
  app.run(main)
