"""The official data set: downloaded (or copied from a local folder), unzipped safely, checked.

The command is `python -m tools.get_data` (`fkd-get-data`).
"""

import os
import shutil
import stat
import tempfile
import zipfile

from PIL import Image

from fkd_tf.utils import io_utils

OFFICIAL_URL = ("https://s3.amazonaws.com/video.udacity-data.com/topher/2018/May/"
                "5aea1b91_train-test-data/train-test-data.zip")
# Unknown here: this machine cannot reach the address above to hash the zip. With None,
# get_file checks no hash and only the counts and image checks below guard the download;
# set it (or pass --sha256) once the official zip's sha256 is known.
OFFICIAL_ZIP_SHA256 = None
EXPECTED = {"training": ("training_frames_keypoints.csv", 3462),
            "test": ("test_frames_keypoints.csv", 770)}
# The official zip unpacks to about 250 MB, and its PNGs barely compress (the CSVs about
# 4:1). These caps refuse a zip bomb from its directory, before anything is extracted.
MAX_UNZIPPED_BYTES = 1 << 30
MAX_COMPRESSION_RATIO = 100
# Small members may compress far better than that (a short run of zeros) and cannot
# fill a disk: the ratio is checked only above this size.
RATIO_CHECKED_ABOVE_BYTES = 1 << 20


class DataError(RuntimeError):
  """A missing, incomplete or unsafe data set; the message names the file or flag."""


def check_images(image_dir, shown_as=None):
  """Refuses an image that is empty or that PIL cannot read by its content (the data set's
  images are PNGs named .jpg, so the extension says nothing). Errors name each file as
  shown_as/<name> when given (the download's address, not a temporary folder)."""
  for name in sorted(os.listdir(image_dir)):
    if name.startswith("."):
      continue
    path = os.path.join(image_dir, name)
    shown = os.path.join(shown_as, name) if shown_as else path
    try:
      mode = os.stat(path).st_mode  # follows a link, as opening would
    except OSError as e:
      raise DataError(f"{shown} cannot be read ({e.strerror or e})") from None
    if not stat.S_ISREG(mode):
      # Opening a named pipe blocks until something writes into it: forever, here.
      kind = ("a folder" if stat.S_ISDIR(mode) else "a named pipe" if stat.S_ISFIFO(mode)
              else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a socket"
              if stat.S_ISSOCK(mode) else "not a regular file")
      raise DataError(f"{shown} is {kind}, not an image file; refusing to open it")
    if os.path.getsize(path) == 0:
      raise DataError(f"{shown} is empty (0 bytes)")
    try:
      with Image.open(path) as image:
        image.verify()  # reads the whole file, checks its structure and checksums
    except (OSError, SyntaxError, ValueError) as e:
      raise DataError(f"{shown} is not a readable image "
                      f"({str(e).replace(path, os.path.basename(path))})") from None


def check_layout(folder, expected=EXPECTED, verify_images=True, shown_as=None):
  """Checks the official layout, image counts and (by default) every image's content;
  shown_as names the folder in errors about images.

  Returns:
    {split folder: image count}.
  """
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
    if verify_images:
      check_images(image_dir, f"{shown_as}: {image_folder}" if shown_as else None)
    counts[image_folder] = found
  return counts


def _inside(path, folder):
  """Whether path (already resolved) is folder or lies under it."""
  return os.path.commonpath([path, folder]) == folder


def _refuse_overlap(source, output_dir):
  """Refuses an --output_dir inside --source (or around it): it would copy into itself."""
  real_source, real_output = os.path.realpath(source), os.path.realpath(output_dir)
  if _inside(real_output, real_source) or _inside(real_source, real_output):
    raise DataError(f"--output_dir={output_dir} and --source={source} overlap; the copy must "
                    "go to a folder outside the source")


def _refuse_links_out(source, expected=EXPECTED):
  """Refuses a link in the source that leads outside it: copying follows links, so one to
  /etc/passwd would land in the data set."""
  real_source = os.path.realpath(source)
  for image_folder, (csv_name, _) in expected.items():
    image_dir = os.path.join(source, image_folder)
    paths = [os.path.join(source, csv_name), image_dir]
    for root, folders, files in os.walk(image_dir):
      paths += [os.path.join(root, n) for n in folders + files]
    for path in paths:
      if not _inside(os.path.realpath(path), real_source):
        raise DataError(f"{path} is a link to {os.path.realpath(path)}, outside "
                        f"--source={source}; refusing to copy it")


def _find_root(folder):
  """The folder under `folder` that holds training_frames_keypoints.csv."""
  for root, _, files in os.walk(folder):
    if EXPECTED["training"][0] in files:
      return root
  raise DataError(f"the download holds no {EXPECTED['training'][0]}")


def download(url, cache_dir, sha256=None):
  """Downloads url into cache_dir with keras.utils.get_file; returns the file's path.

  Raises:
    DataError when the fetch fails or the file's sha256 differs from a given one.
  """
  # Importing keras (and TensorFlow under it) takes seconds; only a download needs it.
  import keras  # pylint: disable=g-import-not-at-top
  try:
    return keras.utils.get_file(fname="train-test-data.zip", origin=url, file_hash=sha256,
                                hash_algorithm="sha256", cache_dir=cache_dir,
                                cache_subdir="download", extract=False)
  except ValueError:
    # get_file's only ValueError here is a hash mismatch; it leaves the file, whose
    # actual hash tells the user what arrived.
    target = os.path.join(cache_dir, "download", "train-test-data.zip")
    actual = io_utils.sha256_of(target) if os.path.isfile(target) else "unknown"
    raise DataError(f"{url}: the download's sha256 is {actual}, expected {sha256} "
                    "(--sha256); the file changed or arrived damaged") from None
  except Exception as e:  # get_file raises a bare Exception when the fetch fails
    raise DataError(f"cannot download {url}: {e}") from None


def extract_zip(archive, folder, max_unzipped_bytes=MAX_UNZIPPED_BYTES,
                max_ratio=MAX_COMPRESSION_RATIO, origin=None):
  """Extracts archive into folder after checking the sizes its directory declares; errors
  name origin (the URL) when given.

  zipfile never writes more than a member's declared file_size, so the declared sizes
  bound what lands on disk.
  """
  origin = origin or archive
  try:
    with zipfile.ZipFile(archive) as z:
      members = z.infolist()
      total = sum(m.file_size for m in members)
      if total > max_unzipped_bytes:
        raise DataError(f"{origin} would unpack to {total} bytes, more than the "
                        f"{max_unzipped_bytes} allowed; refusing to extract it")
      for member in members:
        ratio = member.file_size / max(member.compress_size, 1)
        if member.file_size > RATIO_CHECKED_ABOVE_BYTES and ratio > max_ratio:
          raise DataError(f"{origin}: member {member.filename} would expand {ratio:.0f}-fold "
                          f"({member.compress_size} to {member.file_size} bytes), more than "
                          f"{max_ratio}-fold; refusing to extract a zip bomb")
      z.extractall(folder)
  except zipfile.BadZipFile as e:
    raise DataError(f"{origin} is not a readable zip ({e})") from None


def get_data(output_dir, source=None, url=OFFICIAL_URL, expected=EXPECTED,
             sha256=OFFICIAL_ZIP_SHA256, max_unzipped_bytes=MAX_UNZIPPED_BYTES):
  """Copies (or downloads and unpacks) the data set into output_dir; returns its counts."""
  if source:
    _refuse_overlap(source, output_dir)
  if os.path.isdir(output_dir) and os.listdir(output_dir):
    counts = check_layout(output_dir, expected)
    print(f"{output_dir} already holds the data set: {counts}")
    return counts
  if source:
    _refuse_links_out(source, expected)
    check_layout(source, expected)
  parent = os.path.dirname(os.path.abspath(output_dir))
  os.makedirs(parent, exist_ok=True)
  staging = tempfile.mkdtemp(prefix=".get_data-", dir=parent)
  try:
    if source:
      root = os.path.join(staging, "data")
      names = [name for image_folder, (csv_name, _) in expected.items()
               for name in (image_folder, csv_name)]
      os.makedirs(root)
      for name in names:
        src = os.path.join(source, name)
        copy = shutil.copytree if os.path.isdir(src) else shutil.copy2
        copy(src, os.path.join(root, name))
    else:
      print(f"downloading {url}")
      archive = download(url, staging, sha256)
      extract_zip(archive, os.path.join(staging, "unzipped"), max_unzipped_bytes,
                  origin=url)
      root = _find_root(os.path.join(staging, "unzipped"))
    # A copied source was checked above; what a download holds is checked here.
    counts = check_layout(root, expected, verify_images=not source, shown_as=url)
    if os.path.isdir(output_dir):
      os.rmdir(output_dir)  # empty, checked above
    os.rename(root, output_dir)
  finally:
    shutil.rmtree(staging, ignore_errors=True)
  print(f"data set in {output_dir}: {counts}")
  return counts
