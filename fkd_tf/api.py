"""The Python API: `fkd_tf.load()` and `KeypointModel.predict(images, boxes=None)`.

  import fkd_tf
  model = fkd_tf.load()                       # the shipped model (or a path to an export)
  keypoints = model.predict("face.jpg")       # [1, 68, 2], x then y, in image pixels

Images may be file paths, encoded bytes (PNG, JPEG, GIF, BMP) or numpy uint8 arrays
(H, W), (H, W, 1), (H, W, 3) or (H, W, 4); one image or a list of them (or an
[N, H, W(, C)] array). Boxes are face boxes (x0, y0, x1, y1) in each image's pixels, one per
image; without them the whole image is the face's frame.
"""

import io
import os

import numpy as np

from fkd_tf.serving import versions


def _encode_array(array, index):
  """A numpy image as PNG bytes (lossless), so the served graph decodes it as it would a file."""
  from PIL import Image  # pylint: disable=g-import-not-at-top  (only arrays need Pillow)
  if array.dtype != np.uint8:
    raise ValueError(f"images[{index}]: expected uint8 pixels, got {array.dtype}")
  if array.ndim == 3 and array.shape[-1] == 1:
    array = array[..., 0]
  if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
    raise ValueError(f"images[{index}]: expected (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), "
                     f"got shape {array.shape}")
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


class KeypointModel:
  """An exported fkd_tf model; `predict` returns keypoints [N, 68, 2] in image pixels."""

  def __init__(self, path):
    self.path = versions.resolve_saved_model(path)
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
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    encoded = [_encoded(image, i) for i, image in enumerate(_as_list(images))]
    if boxes is None:
      result = self._whole(image_bytes=tf.constant(encoded, tf.string))
    else:
      boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
      if len(boxes) != len(encoded):
        raise ValueError(f"boxes: {len(boxes)} boxes for {len(encoded)} images; give one "
                         "box per image")
      result = self._with_boxes(image_bytes=tf.constant(encoded, tf.string),
                                boxes=tf.constant(boxes))
    return result["keypoints"].numpy()


def load(path=None):
  """The shipped model, or the export at `path` (a version folder or a base of versions)."""
  return KeypointModel(path or versions.SHIPPED_MODEL)
