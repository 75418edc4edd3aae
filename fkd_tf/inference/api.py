"""The Python API: `fkd_tf.load()` and `KeypointModel.predict(images, boxes=None)`.

  import fkd_tf
  model = fkd_tf.load()                       # the shipped model (or a path to an export)
  keypoints = model.predict("face.jpg")       # [1, 68, 2], x then y, in image pixels

Images may be file paths, encoded bytes (PNG, JPEG, GIF, BMP) or numpy uint8 arrays
(H, W), (H, W, 1), (H, W, 3) or (H, W, 4); one image or a list of them (or an
[N, H, W(, C)] array). Boxes are face boxes (x0, y0, x1, y1) in each image's pixels, one per
image, taken as the face's keypoint box (a detector's face box does too: the refining
network is trained on boxes jittered by +-20 % in scale and +-10 % in position); without
them the whole image is the face's frame and a first pass finds the face.

Two runtimes give the same keypoints (within 0.05 px, tested): the LiteRT files an export
carries (`backend="litert"`, the default where present: fastest for a face at a time) and
the SavedModel itself (`backend="saved_model"`: batches, the graph TF Serving runs).
"""

import io
import os

import numpy as np

from fkd_tf.serving import litert, versions

BACKENDS = ("auto", "litert", "saved_model")
# As the served graph: boxes under this side or this much larger than the image frame noise.
MIN_BOX_SIDE = 4.0
MAX_BOX_OVER_IMAGE = 8.0


def _checked_array(array, index):
  """uint8 (H, W), (H, W, 3) or (H, W, 4) pixels, or a ValueError naming images[index]."""
  array = np.asarray(array)
  if array.dtype != np.uint8:
    raise ValueError(f"images[{index}]: expected uint8 pixels, got {array.dtype}")
  if array.ndim == 3 and array.shape[-1] == 1:
    array = array[..., 0]
  if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
    raise ValueError(f"images[{index}]: expected (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), "
                     f"got shape {array.shape}")
  return array


def _encode_array(array, index):
  """A numpy image as PNG bytes (lossless), so the served graph decodes it as it would a file."""
  from PIL import Image  # pylint: disable=g-import-not-at-top  (only arrays need Pillow)
  array = _checked_array(array, index)
  buffer = io.BytesIO()
  Image.fromarray(array).save(buffer, format="PNG", compress_level=0)
  return buffer.getvalue()


def _as_list(images):
  """One image or a batch of them -> a list of single images."""
  if isinstance(images, (str, bytes, os.PathLike)):
    return [images]
  if isinstance(images, np.ndarray):
    is_batch = images.ndim == 4 or (images.ndim == 3 and images.shape[-1] not in (1, 3, 4))
    return list(images) if is_batch else [images]
  return list(images)


def _encoded(image, index):
  if isinstance(image, (str, os.PathLike)):
    with open(image, "rb") as f:
      return f.read()
  if isinstance(image, bytes):
    return image
  return _encode_array(np.asarray(image), index)


def _decoded(image, index):
  """uint8 pixels of one image, (H, W) or (H, W, 3|4), as decode_gray would see them."""
  if isinstance(image, (str, os.PathLike, bytes)):
    from PIL import Image  # pylint: disable=g-import-not-at-top
    try:
      picture = Image.open(io.BytesIO(_encoded(image, index)))
      picture.load()
    except Exception as e:  # Pillow raises many types for bad files
      name = image if not isinstance(image, bytes) else f"images[{index}]"
      raise ValueError(f"{name}: not a readable image ({e})") from None
    if picture.mode not in ("L", "RGB", "RGBA"):
      picture = picture.convert("RGBA" if "A" in picture.getbands() else "RGB")
    return np.asarray(picture)
  return _checked_array(image, index)


def _check_box(box, index, image_shape):
  """Refuses a box the served graph would refuse, naming boxes[index]."""
  height, width = image_shape[:2]
  x0, y0, x1, y1 = (float(v) for v in box)
  if not np.all(np.isfinite(box)):
    raise ValueError(f"boxes[{index}] = {list(box)} is not finite")
  if not np.any(box != 0):
    return
  largest = MAX_BOX_OVER_IMAGE * max(height, width)
  if min(x1 - x0, y1 - y0) < MIN_BOX_SIDE or max(x1 - x0, y1 - y0) > largest:
    raise ValueError(f"boxes[{index}] = {list(box)}: a box (x0, y0, x1, y1) must be "
                     f"{MIN_BOX_SIDE:g} px to {MAX_BOX_OVER_IMAGE:g}x the image on a side")
  if x0 >= width or y0 >= height or x1 <= 0 or y1 <= 0:
    raise ValueError(f"boxes[{index}] = {list(box)} lies outside its {width}x{height} image")


class KeypointModel:
  """An exported fkd_tf model; `predict` returns keypoints [N, 68, 2] in image pixels."""

  def __init__(self, path, backend="auto", num_threads=None):
    if backend not in BACKENDS:
      raise ValueError(f"backend={backend!r}: choose one of {BACKENDS}")
    self.path = versions.resolve_saved_model(path)
    if backend == "auto":
      backend = "litert" if litert.has_litert(self.path) else "saved_model"
    if backend == "litert" and not litert.has_litert(self.path):
      raise ValueError(f"{self.path} carries no LiteRT files; use backend='saved_model'")
    self.backend = backend
    if backend == "litert":
      self._cascade = litert.LiteRTCascade(self.path, num_threads=num_threads or 1)
    else:
      loaded = versions.load_saved_model(self.path)
      self._whole = loaded.signatures["serving_default"]
      self._with_boxes = loaded.signatures["with_boxes"]
      self._loaded = loaded  # keeps the signatures' variables alive

  def predict(self, images, boxes=None):
    """Keypoints [N, 68, 2] (x, y) in each image's pixels.

    Args:
      images: one image or a list / batch (see the module's docstring).
      boxes: None, or [N, 4] face boxes (x0, y0, x1, y1), one per image.
    Raises:
      ValueError naming the image or box index for bad input.
    """
    images = _as_list(images)
    if boxes is not None:
      boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
      if len(boxes) != len(images):
        raise ValueError(f"boxes: {len(boxes)} boxes for {len(images)} images; give one "
                         "box per image")
    if self.backend == "litert":
      return self._predict_litert(images, boxes)
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    encoded = [_encoded(image, i) for i, image in enumerate(images)]
    if boxes is None:
      result = self._whole(image_bytes=tf.constant(encoded, tf.string))
    else:
      result = self._with_boxes(image_bytes=tf.constant(encoded, tf.string),
                                boxes=tf.constant(boxes))
    return result["keypoints"].numpy()

  def _predict_litert(self, images, boxes):
    keypoints = np.zeros((len(images), 68, 2), np.float32)
    for index, image in enumerate(images):
      pixels = _decoded(image, index)
      box = None
      if boxes is not None:
        _check_box(boxes[index], index, pixels.shape)
        box = boxes[index]
      keypoints[index] = self._cascade.keypoints(pixels, box)
    return keypoints


def load(path=None, backend="auto", num_threads=None):
  """The shipped model, or the export at `path` (a version folder or a base of versions).

  backend: "litert" (an export's LiteRT files, the default where present), "saved_model",
  or "auto". num_threads: LiteRT's threads (default 1: one face is too small to split).
  """
  return KeypointModel(path or versions.SHIPPED_MODEL, backend, num_threads)
