r"""Sends images to a TF Serving REST endpoint and prints (or draws) the keypoints.

  python -m tools.serving_client --host=localhost --port=8501 --model_name=fkd_tf face.jpg

The request follows TF Serving's REST predict API (row format): binary inputs travel as
{"b64": ...} objects, one instance per image.
"""

import base64
import json
import os
import sys
import urllib.error
import urllib.request

from absl import app, flags
import numpy as np

from fkd_tf.core.keypoints import NUM_KEYPOINTS
from fkd_tf.cli import command

# Enough of an unexpected body (an HTML error page) to recognise it.
MAX_SHOWN_CHARS = 500


def build_request(images, signature_name="serving_default"):
  """The JSON body of a predict request for encoded images (bytes)."""
  return {"signature_name": signature_name,
          "instances": [{"image_bytes": {"b64": base64.b64encode(b).decode("ascii")}}
                        for b in images]}


def predict_url(host, port, model_name, version=None):
  version_part = f"/versions/{version}" if version else ""
  return f"http://{host}:{port}/v1/models/{model_name}{version_part}:predict"


class ServingError(RuntimeError):
  """The server answered, but not with keypoints for every image; says what it sent."""


def parse_response(body, image_count):
  """Keypoints [image_count, 68, 2] from a row-format response (one output: bare
  predictions; several: one dict per image with a "keypoints" entry).

  Raises:
    ServingError naming what is missing or of the wrong shape.
  """
  if not isinstance(body, dict) or "predictions" not in body:
    if isinstance(body, dict) and "error" in body:
      raise ServingError(f"the server sent no predictions, only the error: {body['error']}")
    keys = sorted(body) if isinstance(body, dict) else type(body).__name__
    raise ServingError(f"the response holds no 'predictions' (it holds {keys})")
  predictions = body["predictions"]
  if not isinstance(predictions, list):
    raise ServingError("the response's predictions are not a list with one entry per "
                       f"image: {str(predictions)[:MAX_SHOWN_CHARS]}")
  if predictions and isinstance(predictions[0], dict):
    if not all(isinstance(p, dict) and "keypoints" in p for p in predictions):
      raise ServingError("the response's predictions lack a 'keypoints' output")
    predictions = [p["keypoints"] for p in predictions]
  try:
    keypoints = np.asarray(predictions, np.float32)
  except (TypeError, ValueError):
    raise ServingError("the response's predictions are not numbers of one shape") from None
  expected_shape = (image_count, NUM_KEYPOINTS, 2)
  if keypoints.shape != expected_shape:
    raise ServingError(f"expected keypoints of shape {list(expected_shape)} (one face per "
                       f"image, {image_count} images sent), got {list(keypoints.shape)}")
  return keypoints


def _error_text(raw):
  """TF Serving's REST errors are {"error": "..."}; any other body is shown as it came."""
  text = raw.decode("utf-8", "replace").strip()
  try:
    return str(json.loads(text)["error"])
  except (ValueError, KeyError, TypeError):
    return text[:MAX_SHOWN_CHARS] or "(empty body)"


def predict(images, host, port, model_name, version=None, timeout=30.0):
  """Keypoints [len(images), 68, 2] in each image's pixels, from TF Serving's REST API.

  Raises:
    ServingError when the server answers with an error or without keypoints for every
    image; OSError when it cannot be reached.
  """
  url = predict_url(host, port, model_name, version)
  request = urllib.request.Request(
      url, data=json.dumps(build_request(images)).encode("utf-8"),
      headers={"Content-Type": "application/json"})
  try:
    with urllib.request.urlopen(request, timeout=timeout) as response:
      raw = response.read()
  except urllib.error.HTTPError as e:  # the server answered: show what it said
    raise ServingError(f"{url} answered {e.code} {e.reason}: {_error_text(e.read())}") from None
  try:
    body = json.loads(raw)
  except ValueError:
    shown = raw.decode("utf-8", "replace").strip()[:MAX_SHOWN_CHARS]
    raise ServingError(f"{url} answered with a body that is not JSON: {shown!r}") from None
  try:
    return parse_response(body, len(images))
  except ServingError as e:
    raise ServingError(f"{url}: {e}") from None


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
