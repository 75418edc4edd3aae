import json
import os

import pytest

from fkd_tf.serving import run_folder


def test_a_folder_without_config_is_named(tmp_path):
  with pytest.raises(run_folder.RunFolderError, match=f"{tmp_path} is not a run folder"):
    run_folder.load_network(str(tmp_path))


def test_a_broken_config_is_named(tmp_path):
  (tmp_path / "config.json").write_text("{not json")
  with pytest.raises(run_folder.RunFolderError, match="config.json is not a readable"):
    run_folder.read_config(str(tmp_path))


def test_a_run_without_weights_is_named(tmp_path):
  (tmp_path / "config.json").write_text(json.dumps(
      {"tfrecord_dir": "d", "model_dir": str(tmp_path), "model": "tiny", "augment": {}}))
  assert run_folder.read_config(str(tmp_path)).model == "tiny"
  with pytest.raises(run_folder.RunFolderError, match="has no best.weights.h5"):
    run_folder.load_network(str(tmp_path))


def test_warmup_images_are_encoded_validation_faces(tfrecord_dir):
  images = run_folder.warmup_images(tfrecord_dir, count=2)
  assert len(images) == 2 and all(image[:4] == b"\x89PNG" for image in images)


def _run_with_weights(folder):
  from fkd_tf.core import models  # pylint: disable=g-import-not-at-top
  (folder / "config.json").write_text(json.dumps(
      {"tfrecord_dir": "d", "model_dir": str(folder), "model": "tiny", "augment": {}}))
  path = str(folder / run_folder.BEST_WEIGHTS)
  models.build("tiny").save_weights(path)
  return path


def test_a_truncated_weights_file_is_named(tmp_path):
  path = _run_with_weights(tmp_path)
  run_folder.check_weights_file(path)  # whole: accepted
  with open(path, "r+b") as f:
    f.truncate(os.path.getsize(path) - 100)  # an interrupted copy
  with pytest.raises(run_folder.RunFolderError,
                     match=f"^{path} is not a readable weights file, truncated or damaged "
                           r"\(OSError: .*truncated file"):
    run_folder.check_weights_file(path)
  with pytest.raises(run_folder.RunFolderError,
                     match=f"^{path} cannot be loaded into a tiny network"):
    run_folder.load_network(str(tmp_path))
