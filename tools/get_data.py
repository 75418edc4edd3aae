r"""Brings the facial keypoints data set into place, in the official layout.

  python -m tools.get_data --source=../shared/data/facial_keypoints --output_dir=data/raw
  python -m tools.get_data --output_dir=data/raw          # downloads the official zip

A local source is only read, never modified. Counts are checked (3462 training, 770
test images) and the result appears under --output_dir only when complete.
"""

import os
import shutil
import sys
import tempfile
import urllib.request
import zipfile

from absl import app, flags

from fkd_tf import io_utils

OFFICIAL_URL = ("https://s3.amazonaws.com/video.udacity-data.com/topher/2018/May/"
                "5aea1b91_train-test-data/train-test-data.zip")
EXPECTED = {"training": ("training_frames_keypoints.csv", 3462),
            "test": ("test_frames_keypoints.csv", 770)}


class DataError(RuntimeError):
  pass


def check_layout(folder, expected=EXPECTED):
  """Checks the official layout and image counts; returns {split folder: count}."""
  counts = {}
  for image_folder, (csv_name, count) in expected.items():
    csv_path = os.path.join(folder, csv_name)
    image_dir = os.path.join(folder, image_folder)
    if not os.path.isfile(csv_path) or not os.path.isdir(image_dir):
      raise DataError(f"{folder} is not in the official layout: expected {csv_name} and "
                      f"{image_folder}/")
    found = len([n for n in os.listdir(image_dir) if not n.startswith(".")])
    if found != count:
      raise DataError(f"{image_dir} holds {found} images, expected {count}")
    counts[image_folder] = found
  return counts


def _find_root(folder):
  """The folder under `folder` that holds training_frames_keypoints.csv."""
  for root, _, files in os.walk(folder):
    if EXPECTED["training"][0] in files:
      return root
  raise DataError(f"the download holds no {EXPECTED['training'][0]}")


def download(url, destination):
  """Downloads url to destination with a progress bar."""
  with urllib.request.urlopen(url, timeout=60) as response:
    total = int(response.headers.get("Content-Length") or 0) or None
    progress = io_utils.progress_bar(total, "byte")
    with open(destination, "wb") as f:
      for chunk in iter(lambda: response.read(1 << 20), b""):
        f.write(chunk)
        progress.add(len(chunk))


def get_data(output_dir, source=None, url=OFFICIAL_URL, expected=EXPECTED):
  """Copies (or downloads and unpacks) the data set into output_dir; returns its counts."""
  if os.path.isdir(output_dir) and os.listdir(output_dir):
    counts = check_layout(output_dir, expected)
    print(f"{output_dir} already holds the data set: {counts}")
    return counts
  parent = os.path.dirname(os.path.abspath(output_dir))
  os.makedirs(parent, exist_ok=True)
  staging = tempfile.mkdtemp(prefix=".get_data-", dir=parent)
  try:
    if source:
      check_layout(source, expected)
      root = os.path.join(staging, "data")
      names = [name for image_folder, (csv_name, _) in expected.items()
               for name in (image_folder, csv_name)]
      os.makedirs(root)
      for name in names:
        src = os.path.join(source, name)
        copy = shutil.copytree if os.path.isdir(src) else shutil.copy2
        copy(src, os.path.join(root, name))
    else:
      archive = os.path.join(staging, "data.zip")
      print(f"downloading {url}")
      download(url, archive)
      with zipfile.ZipFile(archive) as z:
        z.extractall(os.path.join(staging, "unzipped"))
      root = _find_root(os.path.join(staging, "unzipped"))
    counts = check_layout(root, expected)
    if os.path.isdir(output_dir):
      os.rmdir(output_dir)  # empty, checked above
    os.rename(root, output_dir)
  finally:
    shutil.rmtree(staging, ignore_errors=True)
  print(f"data set in {output_dir}: {counts}")
  return counts


FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_string("source", None, "A local folder in the official layout (e.g. "
                      "../shared/data/facial_keypoints); when unset, the official zip is "
                      "downloaded.")
  flags.DEFINE_string("output_dir", "data/raw", "Where the data set goes.")
  flags.DEFINE_string("url", OFFICIAL_URL, "The official zip's address.")


def main(argv):
  del argv
  try:
    get_data(FLAGS.output_dir, FLAGS.source, FLAGS.url)
  except (DataError, OSError) as e:
    sys.exit(f"error: {e}")


if __name__ == "__main__":
  define_flags()
  app.run(main)
