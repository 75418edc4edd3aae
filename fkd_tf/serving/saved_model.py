"""Writes a SavedModel for TF Serving, atomically, as the next numeric version.

A version is saved under a hidden temporary name in its base folder and renamed to the
next number, so a server never sees half a model and old versions stay.
"""

import contextlib
import dataclasses
import io
import json
import os
import shutil
import tempfile

import tensorflow as tf

from fkd_tf.utils import io_utils
from fkd_tf.serving import face_detector, fold, litert, versions
from fkd_tf.serving.module import KeypointServer

WARMUP_FILE = "tf_serving_warmup_requests"
METADATA_FILE = litert.METADATA_FILE  # in assets.extra: the stages, framing, LiteRT files


def write_warmup_requests(path, image_bytes_list, model_name="fkd_tf"):
  """TF Serving's warm-up file: a TFRecord of PredictionLog, one request per image, so the
  server traces and loads everything before its first real request."""
  from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2  # pylint: disable=g-import-not-at-top
  with tf.io.TFRecordWriter(path) as writer:
    for image_bytes in image_bytes_list:
      request = predict_pb2.PredictRequest(
          model_spec=model_pb2.ModelSpec(name=model_name, signature_name="serving_default"))
      request.inputs["image_bytes"].CopyFrom(tf.make_tensor_proto([image_bytes], tf.string))
      log = prediction_log_pb2.PredictionLog(
          predict_log=prediction_log_pb2.PredictLog(request=request))
      writer.write(log.SerializeToString())


def read_warmup_requests(path):
  """The PredictRequests of a warm-up file (for checks and replay)."""
  from tensorflow_serving.apis import prediction_log_pb2  # pylint: disable=g-import-not-at-top
  requests = []
  for record in tf.data.TFRecordDataset(path):
    log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
    requests.append(log.predict_log.request)
  return requests


def _litert_files(stages, extra, float16=False):
  """Writes each distinct network as a LiteRT flatbuffer in `extra`; returns per stage the
  file name.

  The Python API runs these for one face at a time: XNNPACK spends far less on a
  depthwise network's many small ops than TF's own runtime (round two's trial: 0.31 vs
  2.31 ms for a MobileNetV2 at alpha 0.5). float16: weights stored in half precision
  (half the size; LiteRT widens them to float32 when it loads the file, so the
  arithmetic stays float32).
  """
  names, files = {}, []
  for stage in stages:
    key = id(stage.network)
    if key not in names:
      names[key] = f"network_{len(names)}.tflite"
      converter = tf.lite.TFLiteConverter.from_keras_model(stage.network)
      if float16:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
      # The converter exports through Keras, which prints every captured variable of the
      # network to stdout (a page per network): only its result is wanted.
      with contextlib.redirect_stdout(io.StringIO()):
        flatbuffer = converter.convert()
      with open(os.path.join(extra, names[key]), "wb") as f:
        f.write(flatbuffer)
    files.append(names[key])
  return files


def _upload(local_version, final):
  """Copies a complete local version folder to a remote base, saved_model.pb last.

  Object stores have no folder rename (gfile copies a gs:// folder object by object, and
  ram:// moves only the folder's own entry), so a remote export is written locally and
  copied up file by file: a server polling the base finds no loadable version until every
  other file is in place, and `versions.resolve_saved_model` skips a version whose upload
  stopped before its saved_model.pb.
  """
  files = sorted((os.path.relpath(os.path.join(folder, name), local_version)
                  for folder, _, names in os.walk(local_version) for name in names),
                 key=lambda relative: relative == "saved_model.pb")
  for relative in files:
    target = os.path.join(final, relative)
    tf.io.gfile.makedirs(os.path.dirname(target))
    tf.io.gfile.copy(os.path.join(local_version, relative), target, overwrite=True)


def _inference_stages(stages, float16):
  """The stages with their networks in inference form (`fold.inference_network`), each
  distinct network converted once."""
  converted = {}
  for stage in stages:
    if id(stage.network) not in converted:
      converted[id(stage.network)] = fold.inference_network(stage.network, float16)
  return [dataclasses.replace(stage, network=converted[id(stage.network)])
          for stage in stages]


def export(stages, export_base, metadata=None, warmup_images=(), litert=True,
           box_passes=None, litert_float16=False, detector=None):
  """Writes a new numeric version under export_base and returns its path.

  stages: list of `Stage` (one network, or coarse then refining networks).

  warmup_images: encoded images for assets.extra/tf_serving_warmup_requests.

  litert: also write each network as a LiteRT file in assets.extra (TF Serving ignores
  that folder; `fkd_tf.load()` runs them for one face at a time).

  box_passes: how many refining stages a given face box runs (None: all).

  litert_float16: the LiteRT files hold half-precision weights (half their size); the
  SavedModel computes with the same rounded weights, so both paths still agree.

  detector: "blazeface" (or a `face_detector.FaceDetector`) adds the `detect` signature:
  whole photos in, every face's box, score and keypoints out, the detector's weights saved
  in the SavedModel (its licence is named in the metadata). None: no `detect` signature.

  Both compute with the networks' inference form: batch norm folded into convolutions.

  The SavedModel is saved under a hidden temporary name in the same folder, then renamed:
  a reader sees either no new version or a complete one, and old versions are untouched.
  export_base may be any folder tf.io.gfile reaches (gs://bucket/models/fkd, ram://...):
  there the version is saved locally and uploaded (`_upload`).
  """
  tf.io.gfile.makedirs(export_base)
  stages = _inference_stages(stages, float16=litert and litert_float16)
  if detector == "blazeface":
    detector = face_detector.FaceDetector(face_detector.load_blazeface())
  server = KeypointServer(stages, box_passes, detector)
  version = versions.next_version(export_base)
  remote = io_utils.is_remote(export_base)
  tmp = (tempfile.mkdtemp(prefix=f"fkd_tf_export_{version}.") if remote else
         os.path.join(export_base, f".tmp-{version}-{os.getpid()}"))
  try:
    signatures = {
        "serving_default": server.serve_bytes,
        "with_boxes": server.serve_bytes_with_boxes,
        "preprocessed": server.serve_preprocessed,
    }
    if detector is not None:
      signatures["detect"] = server.serve_detect
    tf.saved_model.save(server, tmp, signatures=signatures)
    extra = os.path.join(tmp, "assets.extra")
    os.makedirs(extra, exist_ok=True)
    litert_files = (_litert_files(stages, extra, litert_float16) if litert
                    else [None] * len(stages))
    with open(os.path.join(extra, METADATA_FILE), "w") as f:
      json.dump({"stages": [{"model": stage.network.name, **stage.framing.to_json(),
                             "flip_average": stage.flip_average, "litert": litert_file}
                            for stage, litert_file in zip(stages, litert_files)],
                 "box_passes": box_passes,
                 "detector": ({**face_detector.DETECTOR_METADATA,
                               "max_faces": detector.max_faces,
                               "min_score": detector.min_score}
                              if detector is not None else None),
                 "litert_weights": ("float16" if litert_float16 else "float32") if litert
                                   else None,
                 **(metadata or {})}, f, indent=2, sort_keys=True)
    if warmup_images:
      write_warmup_requests(os.path.join(extra, WARMUP_FILE), warmup_images)
    # `version` only named the temporary folder: another export may have taken that number
    # meanwhile, so the final number is allocated here, at the commit.
    if remote:
      final = versions.claim_remote_version(export_base)
      _upload(tmp, final)
    else:
      final = versions.commit_version(tmp, export_base)
  finally:
    if os.path.exists(tmp):
      shutil.rmtree(tmp)
  return final
