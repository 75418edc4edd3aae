"""Atomic writes on a local disk and on TensorFlow's ram:// file system (as gs:// would be)."""

import errno
import os
import uuid

import pytest
import tensorflow as tf

from fkd_tf.utils import io_utils


def _ram_folder():
  return f"ram://io_utils_{uuid.uuid4().hex}"


@pytest.mark.parametrize("remote", [False, True], ids=["local", "ram"])
def test_atomic_path_replaces_the_file_only_when_the_write_completes(tmp_path, remote):
  folder = _ram_folder() + "/a/b" if remote else str(tmp_path / "a" / "b")
  path = os.path.join(folder, "result.json")
  io_utils.write_json(path, {"epoch": 1})  # creates the missing folders
  with pytest.raises(RuntimeError):
    with io_utils.atomic_path(path) as tmp:
      with open(tmp, "w") as f:
        f.write('{"epoch": 2, "trunc')
      raise RuntimeError("killed mid-write")
  # The old file is whole, and no temporary or staged file is left beside it.
  assert io_utils.read_bytes(path) == b'{\n  "epoch": 1\n}\n'
  assert tf.io.gfile.listdir(folder) == ["result.json"]
  io_utils.write_text(path, "two")
  assert io_utils.read_bytes(path) == b"two" and tf.io.gfile.listdir(folder) == ["result.json"]
  assert io_utils.isfile(path) and not io_utils.isfile(folder)
  assert io_utils.is_remote(path) == remote


def test_a_keras_weights_file_goes_to_ram_through_a_local_file():
  import keras  # pylint: disable=g-import-not-at-top
  network = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
  path = _ram_folder() + "/best.weights.h5"
  with io_utils.atomic_path(path, suffix=".weights.h5") as tmp:
    assert not io_utils.is_remote(tmp) and tmp.endswith(".weights.h5")
    network.save_weights(tmp)
  copy = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
  copy.load_weights(path)
  for saved, loaded in zip(network.weights, copy.weights):
    assert (saved.numpy() == loaded.numpy()).all()


def test_free_space_is_checked_locally_and_skipped_on_object_stores(tmp_path):
  with pytest.raises(OSError) as raised:
    io_utils.check_free_space(str(tmp_path), 2**62, "a huge file")
  assert raised.value.errno == errno.ENOSPC and str(tmp_path) in str(raised.value)
  io_utils.check_free_space(_ram_folder(), 2**62, "a huge file")  # no error: nothing to ask
