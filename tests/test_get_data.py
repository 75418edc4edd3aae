import os
import zipfile

import pytest

from tools import get_data


def _listing(folder):
  return sorted((root, tuple(sorted(files)), os.path.getmtime(root))
                for root, _, files in os.walk(folder))


def _expected(raw_dir):
  return {"training": ("training_frames_keypoints.csv", 30),
          "test": ("test_frames_keypoints.csv", 9)}


def test_copies_a_local_folder_and_leaves_it_untouched(raw_dir, tmp_path):
  before = _listing(raw_dir)
  out = str(tmp_path / "data" / "raw")
  counts = get_data.get_data(out, source=raw_dir, expected=_expected(raw_dir))
  assert counts == {"training": 30, "test": 9}
  assert _listing(raw_dir) == before
  assert sorted(os.listdir(out)) == ["test", "test_frames_keypoints.csv", "training",
                                     "training_frames_keypoints.csv"]
  # A second call finds it in place.
  assert get_data.get_data(out, source=raw_dir, expected=_expected(raw_dir)) == counts


def test_wrong_counts_are_refused_and_nothing_is_left(raw_dir, tmp_path):
  out = str(tmp_path / "raw")
  with pytest.raises(get_data.DataError, match="holds 30 images, expected 3462"):
    get_data.get_data(out, source=raw_dir)
  assert not os.path.exists(out) and os.listdir(tmp_path) == []


def test_downloads_and_unpacks_a_zip(raw_dir, tmp_path):
  archive = tmp_path / "official.zip"
  with zipfile.ZipFile(archive, "w") as z:
    for root, _, files in os.walk(raw_dir):
      for name in files:
        path = os.path.join(root, name)
        z.write(path, os.path.join("data", os.path.relpath(path, raw_dir)))
  out = str(tmp_path / "raw")
  counts = get_data.get_data(out, url=archive.as_uri(), expected=_expected(raw_dir))
  assert counts == {"training": 30, "test": 9}


def test_real_data_layout(real_dir):
  assert get_data.check_layout(real_dir) == {"training": 3462, "test": 770}
