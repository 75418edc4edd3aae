"""A TF Serving REST client for the exported SavedModel: requests, responses, errors.

The command is `python -m tools.serving_client` (`fkd-serving-client`).
"""

import base64
import json
import urllib.error
import urllib.request

import numpy as np

from fkd_tf.core.keypoints import NUM_KEYPOINTS

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
