"""The REST client against a stand-in server on 127.0.0.1 that sends canned answers."""

import contextlib
import http.server
import json
import threading

import numpy as np
import pytest

from conftest import run_module
from fkd_tf.serving import client

PREDICTIONS = np.arange(2 * 68 * 2, dtype=np.float32).reshape(2, 68, 2) / 4


@contextlib.contextmanager
def canned_server(answers):
  """Serves one (status, content type, body) answer per request, in order, on a loopback
  port; it stops after the last answer or 30 s without a request. Yields (port, paths)."""
  paths = []

  class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # pylint: disable=invalid-name
      paths.append(self.path)
      self.rfile.read(int(self.headers["Content-Length"]))
      status, content_type, body = answers[len(paths) - 1]
      self.send_response(status)
      self.send_header("Content-Type", content_type)
      self.send_header("Content-Length", str(len(body)))
      self.end_headers()
      self.wfile.write(body)

    def log_message(self, *args):
      pass

  server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
  server.timeout = 30

  def serve():
    for _ in answers:
      server.handle_request()

  thread = threading.Thread(target=serve, daemon=True)
  thread.start()
  try:
    yield server.server_port, paths
  finally:
    thread.join(timeout=35)
    server.server_close()


def _json(obj):
  return json.dumps(obj).encode()


def test_good_answer_gives_the_keypoints():
  with canned_server([(200, "application/json",
                       _json({"predictions": PREDICTIONS.tolist()}))]) as (port, paths):
    keypoints = client.predict([b"a", b"b"], "127.0.0.1", port, "fkd_tf", version=3)
  np.testing.assert_array_equal(keypoints, PREDICTIONS)
  assert paths == ["/v1/models/fkd_tf/versions/3:predict"]


def test_a_400_shows_the_servers_error_text():
  error = "Could not parse base64 string: Illegal character at byte 7"
  with canned_server([(400, "application/json", _json({"error": error}))]) as (port, _):
    with pytest.raises(client.ServingError, match=f"answered 400 Bad Request: {error}"):
      client.predict([b"a"], "127.0.0.1", port, "fkd_tf")


BAD_ANSWERS = {
    "no predictions": (_json({"outputs": PREDICTIONS.tolist()}),
                       r"no 'predictions' \(it holds \['outputs'\]\)"),
    "error in a 200": (_json({"error": "Servable not found"}),
                       "no predictions, only the error: Servable not found"),
    "html": (b"<html><body>502 Bad Gateway</body></html>",
             "not JSON: '<html><body>502 Bad Gateway"),
    "fewer predictions": (_json({"predictions": PREDICTIONS[:1].tolist()}),
                          r"shape \[2, 68, 2\] .*2 images sent\), got \[1, 68, 2\]"),
    "predictions not a list": (_json({"predictions": 5}),
                               "predictions are not a list with one entry per image: 5"),
    "ragged predictions": (_json({"predictions": [[1.0, 2.0], [3.0]]}),
                           "not numbers of one shape"),
    "dicts without keypoints": (_json({"predictions": [{"scores": 1}, {"scores": 2}]}),
                                "lack a 'keypoints' output"),
}


@pytest.mark.parametrize("case", sorted(BAD_ANSWERS))
def test_a_200_without_keypoints_for_every_image_is_a_clear_error(case):
  body, message = BAD_ANSWERS[case]
  with canned_server([(200, "application/json", body)]) as (port, _):
    with pytest.raises(client.ServingError,
                       match=f"http://127.0.0.1:{port}/v1/models/fkd_tf:predict.*{message}"):
      client.predict([b"a", b"b"], "127.0.0.1", port, "fkd_tf")


def test_command_exits_non_zero_with_the_servers_text(tmp_path):
  image = tmp_path / "face.png"
  image.write_bytes(b"\x89PNG not really")
  answers = [(400, "application/json", _json({"error": "Illegal character"})),
             (200, "text/html", b"<html>proxy error</html>"),
             (200, "application/json", _json({"predictions": PREDICTIONS[:1].tolist()}))]
  with canned_server(answers) as (port, _):
    results = [run_module("tools.serving_client", "--host=127.0.0.1", f"--port={port}",
                          str(image), str(image), timeout=120) for _ in answers]
  for result, expected in zip(results, ["answered 400 Bad Request: Illegal character",
                                        "not JSON: '<html>proxy error</html>'",
                                        "got [1, 68, 2]"]):
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert expected in result.stderr.splitlines()[-1]
    assert result.stdout == ""
