import hashlib
import os
import shutil
import signal
import zipfile

import pytest

from fkd_tf.data import download


def _listing(folder):
  return sorted((root, tuple(sorted(files)), os.path.getmtime(root))
                for root, _, files in os.walk(folder))


def _expected(raw_dir):
  return {"training": ("training_frames_keypoints.csv", 30),
          "test": ("test_frames_keypoints.csv", 9)}


def test_copies_a_local_folder_and_leaves_it_untouched(raw_dir, tmp_path):
  before = _listing(raw_dir)
  out = str(tmp_path / "data" / "raw")
  counts = download.get_data(out, source=raw_dir, expected=_expected(raw_dir))
  assert counts == {"training": 30, "test": 9}
  assert _listing(raw_dir) == before
  assert sorted(os.listdir(out)) == ["test", "test_frames_keypoints.csv", "training",
                                     "training_frames_keypoints.csv"]
  # A second call finds it in place.
  assert download.get_data(out, source=raw_dir, expected=_expected(raw_dir)) == counts


def test_wrong_counts_are_refused_and_nothing_is_left(raw_dir, tmp_path):
  out = str(tmp_path / "raw")
  with pytest.raises(download.DataError, match="holds 30 images, expected 3462"):
    download.get_data(out, source=raw_dir)
  assert not os.path.exists(out) and os.listdir(tmp_path) == []


def _zip_of(raw_dir, archive, extra=()):
  """Zips raw_dir under data/ (as the official zip does); extra: (name, bytes) members."""
  with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
    for root, _, files in os.walk(raw_dir):
      for name in files:
        path = os.path.join(root, name)
        z.write(path, os.path.join("data", os.path.relpath(path, raw_dir)))
    for name, data in extra:
      z.writestr(name, data)
  return archive


def test_downloads_and_unpacks_a_zip(raw_dir, tmp_path):
  archive = _zip_of(raw_dir, tmp_path / "official.zip")
  out = str(tmp_path / "raw")
  counts = download.get_data(out, url=archive.as_uri(), expected=_expected(raw_dir))
  assert counts == {"training": 30, "test": 9}


def test_download_is_checked_against_its_sha256(raw_dir, tmp_path):
  archive = _zip_of(raw_dir, tmp_path / "official.zip")
  right = hashlib.sha256(archive.read_bytes()).hexdigest()
  wrong = "0" * 64
  out = str(tmp_path / "data" / "raw")
  with pytest.raises(download.DataError,
                     match=f"official.zip: the download's sha256 is {right}, expected {wrong}"):
    download.get_data(out, url=archive.as_uri(), expected=_expected(raw_dir), sha256=wrong)
  assert os.listdir(tmp_path / "data") == []  # no output, no staging left
  counts = download.get_data(out, url=archive.as_uri(), expected=_expected(raw_dir),
                             sha256=right)
  assert counts == {"training": 30, "test": 9}
  assert sorted(os.listdir(tmp_path / "data")) == ["raw"]


def test_zip_bombs_are_refused_before_extraction(raw_dir, tmp_path):
  # 20 MB of zeros deflate to about 20 KB: a 1000-fold member, like the 306 KB zip that
  # became 300 MB.
  bomb = _zip_of(raw_dir, tmp_path / "bomb.zip", [("data/padding.bin", bytes(20 << 20))])
  assert bomb.stat().st_size < 1 << 20
  out = tmp_path / "out" / "raw"
  with pytest.raises(download.DataError, match="bomb.zip: member data/padding.bin would "
                     "expand [0-9]+-fold .*more than 100-fold"):
    download.get_data(str(out), url=bomb.as_uri(), expected=_expected(raw_dir))
  assert os.listdir(tmp_path / "out") == []
  # The total is capped too: this data set unpacks to more than 100 kB.
  plain = _zip_of(raw_dir, tmp_path / "plain.zip")
  with pytest.raises(download.DataError, match=r"plain.zip would unpack to [0-9]+ bytes, "
                     "more than the 100000 allowed"):
    download.get_data(str(out), url=plain.as_uri(), expected=_expected(raw_dir),
                      max_unzipped_bytes=100_000)
  assert os.listdir(tmp_path / "out") == []


def _source_copy(raw_dir, tmp_path):
  source = str(tmp_path / "source")
  shutil.copytree(raw_dir, source)
  name = sorted(os.listdir(os.path.join(source, "training")))[4]
  return source, os.path.join(source, "training", name)


@pytest.mark.parametrize("damage", ["empty", "not an image", "truncated"])
def test_a_source_image_that_does_not_decode_is_named(raw_dir, tmp_path, damage):
  source, image_path = _source_copy(raw_dir, tmp_path)
  with open(image_path, "r+b") as f:
    data = f.read()
    f.seek(0)
    f.truncate()
    f.write({"empty": b"", "not an image": b"hello " * 100,
             "truncated": data[:len(data) // 2]}[damage])
  out = tmp_path / "out" / "raw"
  with pytest.raises(download.DataError, match=f"{image_path} is (empty|not a readable)"):
    download.get_data(str(out), source=source, expected=_expected(raw_dir))
  assert not os.path.exists(tmp_path / "out")


def test_a_link_leading_out_of_the_source_is_refused(raw_dir, tmp_path):
  source, image_path = _source_copy(raw_dir, tmp_path)
  outside = str(tmp_path / "outside.png")
  shutil.move(image_path, outside)  # a good image, so only the link check can refuse it
  os.symlink(outside, image_path)
  out = tmp_path / "out" / "raw"
  with pytest.raises(download.DataError,
                     match=f"{image_path} is a link to {outside}, outside --source"):
    download.get_data(str(out), source=source, expected=_expected(raw_dir))
  assert not os.path.exists(tmp_path / "out")


def test_an_output_dir_inside_the_source_is_refused(raw_dir, tmp_path):
  source, _ = _source_copy(raw_dir, tmp_path)
  before = _listing(source)
  out = os.path.join(source, "copy")
  with pytest.raises(download.DataError,
                     match=f"--output_dir={out} and --source={source} overlap"):
    download.get_data(out, source=source, expected=_expected(raw_dir))
  assert _listing(source) == before


def test_real_data_layout(real_dir):
  assert download.check_layout(real_dir) == {"training": 3462, "test": 770}


@pytest.fixture
def no_hang():
  """Turns a call that blocks for more than 30 s into a TimeoutError (a signal interrupts
  a blocking open of a named pipe, where a thread could not)."""
  def give_up(*_):
    raise TimeoutError("blocked for 30 s")
  previous = signal.signal(signal.SIGALRM, give_up)
  signal.alarm(30)
  yield
  signal.alarm(0)
  signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("kind", ["named pipe", "folder"])
def test_a_source_image_that_is_not_a_regular_file_is_refused_unopened(raw_dir, tmp_path,
                                                                       kind, no_hang):
  source = str(tmp_path / "source")
  shutil.copytree(raw_dir, source)
  name = sorted(os.listdir(os.path.join(source, "training")))[4]
  path = os.path.join(source, "training", name)
  os.remove(path)
  os.mkfifo(path) if kind == "named pipe" else os.mkdir(path)
  out = str(tmp_path / "raw")
  with pytest.raises(download.DataError,
                     match=f"^{path} is a {kind}, not an image file; refusing to open it$"):
    download.get_data(out, source=source, expected=_expected(raw_dir))
  assert not os.path.exists(out)
