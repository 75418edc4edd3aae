"""SavedModel export for TF Serving: encoded image bytes in, keypoints in image pixels out.

The serving graph decodes and preprocesses with the very functions evaluation uses
(`input_pipeline.decode_gray`, `augment.frame_batch`, `inference`), one image at a time
so a batch may mix sizes and formats. Versions are written under a temporary name and
renamed to the next number, so TF Serving never sees a half-written model.
"""

import dataclasses
import json
import os
import shutil
from typing import Optional

import tensorflow as tf

from fkd_tf import augment, geometry, inference, input_pipeline
from fkd_tf.keypoints import NET_SIZE, NUM_KEYPOINTS


@dataclasses.dataclass
class Stage:
  """One network of the served model and the framing it was trained with.

  region_margin: None for the first stage (framed on the whole image or the given box);
  for a refining stage, the square around the previous stage's keypoints.
  """
  network: object
  rescale_size: float
  normalisation: str
  region_margin: Optional[float] = None
  flip_average: bool = False  # also run on the mirrored frame and average


class KeypointServer(tf.Module):
  """The exported module: one network, or a coarse-to-fine cascade, with its framing."""

  def __init__(self, stages):
    super().__init__(name="keypoint_server")
    self.stages = list(stages)
    self.networks = [stage.network for stage in self.stages]  # tracked for saving

  @staticmethod
  def _frame_one(image_bytes, box, rescale_size):
    image = input_pipeline.decode_gray(image_bytes, name="image_bytes")
    size = tf.cast(tf.shape(image)[:2], tf.float32)
    whole = tf.stack([0.0, 0.0, size[1], size[0]])
    region = tf.where(tf.reduce_any(box != 0.0), box, whole)
    # A box must have a size and overlap its image; anything else would frame nothing.
    valid = tf.reduce_all([region[2] > region[0], region[3] > region[1], region[0] < size[1],
                           region[1] < size[0], region[2] > 0.0, region[3] > 0.0])
    check = tf.debugging.Assert(valid, ["boxes: a box (x0, y0, x1, y1) is empty or lies "
                                        "outside its image; box:", region, "image (h, w):",
                                        size])
    with tf.control_dependencies([check]):
      region = tf.identity(region)
    images_net, net_from_image = augment.frame_batch(image[tf.newaxis], region[tf.newaxis],
                                                     rescale_size)
    return images_net[0], net_from_image[0]

  def _run_stage(self, stage, image_bytes, regions):
    images_net, net_from_image = tf.map_fn(
        lambda args: self._frame_one(args[0], args[1], stage.rescale_size),
        (image_bytes, regions),
        fn_output_signature=(tf.TensorSpec([NET_SIZE, NET_SIZE, 1], tf.float32),
                             tf.TensorSpec([3, 3], tf.float32)))
    keypoints_net = inference.keypoints_net_of(stage.network, images_net, stage.normalisation,
                                               stage.flip_average)
    return inference.keypoints_px_from_net(keypoints_net, net_from_image)

  def _keypoints(self, image_bytes, boxes):
    def run():
      keypoints_px = self._run_stage(self.stages[0], image_bytes, boxes)
      for stage in self.stages[1:]:
        regions = geometry.square_around_points(keypoints_px, stage.region_margin)
        keypoints_px = self._run_stage(stage, image_bytes, regions)
      return keypoints_px

    # An empty request gets an empty answer (convolutions reject a batch of zero on CPU).
    keypoints_px = tf.cond(tf.size(image_bytes) > 0, run,
                           lambda: tf.zeros([0, NUM_KEYPOINTS, 2], tf.float32))
    return {"keypoints": keypoints_px}

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
  def serve_bytes(self, image_bytes):
    """Whole images: keypoints [N, 68, 2] in each image's pixels."""
    return self._keypoints(image_bytes, tf.zeros([tf.shape(image_bytes)[0], 4]))

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes"),
                                tf.TensorSpec([None, 4], tf.float32, name="boxes")])
  def serve_bytes_with_boxes(self, image_bytes, boxes):
    """Face boxes (x0, y0, x1, y1) in pixels; an all-zero box means the whole image."""
    return self._keypoints(image_bytes, boxes)

  @tf.function(input_signature=[
      tf.TensorSpec([None, NET_SIZE, NET_SIZE, 1], tf.float32, name="images")])
  def serve_preprocessed(self, images):
    """Already-framed [N, 90, 90, 1] images in [0, 1]: the (last) network's output."""
    return {"keypoints_norm": tf.reshape(self.stages[-1].network(images, training=False),
                                         [-1, 2 * NUM_KEYPOINTS])}


WARMUP_FILE = "tf_serving_warmup_requests"


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


def versions(export_base):
  """The numeric version folders under export_base (TF Serving loads only those)."""
  if not os.path.isdir(export_base):
    return []
  return sorted(int(d) for d in os.listdir(export_base) if d.isdigit())


def next_version(export_base):
  return max(versions(export_base), default=0) + 1


def resolve_saved_model(path):
  """A SavedModel folder, or the newest numeric version under a base folder."""
  if os.path.isfile(os.path.join(path, "saved_model.pb")):
    return path
  found = versions(path)
  if not found:
    raise FileNotFoundError(f"no SavedModel at {path!r} (nor numeric versions under it)")
  return os.path.join(path, str(found[-1]))


def export(stages, export_base, metadata=None, warmup_images=()):
  """Writes a new numeric version under export_base and returns its path.

  stages: list of `Stage` (one network, or coarse then refining networks).

  warmup_images: encoded images for assets.extra/tf_serving_warmup_requests.

  The SavedModel is saved under a hidden temporary name in the same folder, then renamed:
  a reader sees either no new version or a complete one, and old versions are untouched.
  """
  os.makedirs(export_base, exist_ok=True)
  server = KeypointServer(stages)
  version = next_version(export_base)
  tmp = os.path.join(export_base, f".tmp-{version}-{os.getpid()}")
  try:
    tf.saved_model.save(server, tmp, signatures={
        "serving_default": server.serve_bytes,
        "with_boxes": server.serve_bytes_with_boxes,
        "preprocessed": server.serve_preprocessed,
    })
    extra = os.path.join(tmp, "assets.extra")
    os.makedirs(extra, exist_ok=True)
    with open(os.path.join(extra, "fkd_tf.json"), "w") as f:
      json.dump({"stages": [{"model": stage.network.name, "rescale_size": stage.rescale_size,
                             "normalisation": stage.normalisation,
                             "region_margin": stage.region_margin,
                             "flip_average": stage.flip_average} for stage in stages],
                 **(metadata or {})}, f, indent=2, sort_keys=True)
    if warmup_images:
      write_warmup_requests(os.path.join(extra, WARMUP_FILE), warmup_images)
    final = os.path.join(export_base, str(version))
    os.rename(tmp, final)
  finally:
    if os.path.exists(tmp):
      shutil.rmtree(tmp)
  return final


def main(argv):
  """`python -m fkd_tf.export --model_dirs=runs/coarse,runs/best --export_base=DIR`."""
  del argv
  from absl import flags  # pylint: disable=g-import-not-at-top
  from fkd_tf import train_lib  # pylint: disable=g-import-not-at-top  (it imports this)
  settings = flags.FLAGS
  loaded = {}  # a run named twice is one network run twice, saved once
  for model_dir in settings.model_dirs:
    if model_dir not in loaded:
      loaded[model_dir] = train_lib.stage_of(*train_lib.load_network(model_dir))
  stages = [loaded[d] for d in settings.model_dirs]
  if settings.flip_average:
    stages = [dataclasses.replace(stage, flip_average=True) for stage in stages]
  if stages[0].region_margin is not None:
    raise ValueError(f"{settings.model_dirs[0]} is a refining stage; the first stage must "
                     "frame whole images")
  warmup = train_lib.warmup_images(settings.tfrecord_dir) if settings.tfrecord_dir else ()
  path = export(stages, settings.export_base, metadata={"model_dirs": settings.model_dirs},
                warmup_images=warmup)
  print(f"exported {len(stages)} stage(s): {path}")


if __name__ == "__main__":
  from absl import app, flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_list("model_dirs", None, "Finished runs, first stage first; a refining run "
                    "may repeat to refine more than once.")
  flags.DEFINE_string("export_base", None, "Where the numbered version folder goes.")
  flags.DEFINE_string("tfrecord_dir", "data/tfrecords", "For warm-up images ('' for none).")
  flags.DEFINE_bool("flip_average", False, "Average each stage's prediction with its "
                    "prediction on the mirrored frame (twice the compute).")
  flags.mark_flags_as_required(["model_dirs", "export_base"])
  app.run(main)
