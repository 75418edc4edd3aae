import base64
import http.server
import json
import os
import threading

import numpy as np
import pytest
import tensorflow as tf

from conftest import run_module
from fkd_tf import api, predict
from fkd_tf.core import models
from fkd_tf.serving import saved_model as saved_model_lib
from fkd_tf.serving import versions
from fkd_tf.serving.module import Stage
from tools import serving_client
import fakes


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
  tf.keras.utils.set_random_seed(2)
  return saved_model_lib.export([Stage(models.ppbnet(), 100.0, "original")],
                       str(tmp_path_factory.mktemp("sm")))


def test_predict_writes_json_csv_png_and_reports_bad_files(saved_model, tmp_path):
  images = tmp_path / "in"
  images.mkdir()
  face = fakes.draw_face(120, 130, (10, 15, 110, 125))[0]
  (images / "face_00.png").write_bytes(fakes.encode(face))
  (images / "broken.jpg").write_bytes(b"not an image at all")
  out = tmp_path / "out"
  result = run_module("fkd_tf.predict", f"--saved_model={saved_model}", f"--output_dir={out}",
                      "--csv", str(images))
  assert result.returncode != 0  # one file failed ...
  assert "broken.jpg" in result.stderr and "1 of 2 files" in result.stderr
  record = json.load(open(out / "face_00.json"))  # ... and the other was still done
  keypoints = np.array(record["faces"][0]["keypoints"])
  assert keypoints.shape == (68, 2)
  assert (out / "face_00.png").exists()
  assert len(open(out / "face_00.csv").read().splitlines()) == 2


def test_predict_on_a_real_test_image_is_near_the_truth(real_dir, tmp_path):
  shipped = versions.SHIPPED_MODEL
  if not os.path.isdir(shipped):
    pytest.skip("no shipped model in this checkout")
  line = open(os.path.join(real_dir, "test_frames_keypoints.csv")).readlines()[1]
  name, values = line.split(",", 1)
  truth = np.array([float(v) for v in values.split(",")]).reshape(68, 2)
  predictor = api.load(shipped)
  record = predict.predict_file(predictor, os.path.join(real_dir, "test", name), str(tmp_path))
  guess = np.array(record["faces"][0]["keypoints"])
  inter_ocular = np.linalg.norm(truth[36] - truth[45])
  assert np.linalg.norm(guess - truth, axis=1).mean() / inter_ocular < 0.5


def test_rest_body_is_tf_serving_row_format():
  body = serving_client.build_request([b"\x89PNG fake", b"\xff\xd8\xff other"])
  assert body["signature_name"] == "serving_default"
  assert len(body["instances"]) == 2
  assert base64.b64decode(body["instances"][0]["image_bytes"]["b64"]) == b"\x89PNG fake"
  assert serving_client.predict_url("h", 8501, "fkd_tf", 3) == (
      "http://h:8501/v1/models/fkd_tf/versions/3:predict")


def test_client_against_a_local_stand_in_for_tf_serving(saved_model):
  serve = tf.saved_model.load(saved_model).signatures["serving_default"]
  seen = []

  class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # pylint: disable=invalid-name
      seen.append(self.path)
      body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
      images = [base64.b64decode(i["image_bytes"]["b64"]) for i in body["instances"]]
      keypoints = serve(image_bytes=tf.constant(images))["keypoints"].numpy()
      payload = json.dumps({"predictions": keypoints.tolist()}).encode()
      self.send_response(200)
      self.send_header("Content-Type", "application/json")
      self.end_headers()
      self.wfile.write(payload)

    def log_message(self, *args):
      pass

  server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
  thread = threading.Thread(target=server.handle_request, daemon=True)
  thread.start()
  face = fakes.encode(fakes.draw_face(100, 110, (5, 5, 95, 105))[0])
  keypoints = serving_client.predict([face], "127.0.0.1", server.server_port, "fkd_tf",
                                     timeout=60)
  thread.join(timeout=60)
  server.server_close()
  assert seen == ["/v1/models/fkd_tf:predict"]
  expected = serve(image_bytes=tf.constant([face]))["keypoints"].numpy()
  np.testing.assert_allclose(keypoints, expected, atol=1e-3)


def test_detect_faces_maps_keypoints_into_the_photo(saved_model, real_dir, tmp_path):
  pytest.importorskip("cv2")
  from PIL import Image  # pylint: disable=g-import-not-at-top
  line = open(os.path.join(real_dir, "test_frames_keypoints.csv")).readlines()[11]
  face = Image.open(os.path.join(real_dir, "test", line.split(",", 1)[0])).convert("RGB")
  face = face.resize((face.width * 2, face.height * 2))
  photo = Image.new("RGB", (face.width + 300, face.height + 200), (90, 110, 130))
  photo.paste(face, (200, 120))
  photo.save(tmp_path / "photo.png")
  Image.new("RGB", (300, 200), (128, 128, 128)).save(tmp_path / "blank.png")
  predictor = api.load(saved_model)
  record = predict.predict_file(predictor, str(tmp_path / "photo.png"), str(tmp_path / "out"),
                                detect_faces=True)
  assert record["faces"], "no face found in a photo with a clear face"
  truth_centre = np.array([200 + face.width / 2, 120 + face.height / 2])
  centres = [np.mean(np.reshape(f["region"], (2, 2)), axis=0) for f in record["faces"]]
  assert min(np.linalg.norm(c - truth_centre) for c in centres) < face.width / 2
  for found in record["faces"]:
    assert np.array(found["keypoints"]).shape == (68, 2)
  blank = predict.predict_file(predictor, str(tmp_path / "blank.png"), str(tmp_path / "out"),
                               detect_faces=True)
  assert blank["faces"] == []
  assert (tmp_path / "out" / "photo.png").exists()
