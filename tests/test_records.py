import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from fkd_tf.data import records


def test_example_round_trips_through_the_feature_spec():
  keypoints = np.arange(136, dtype=np.float32) * 0.5 - 3.25
  example = records.make_example(b"\x89PNG bytes", 120, 90, "Jo_Doe_01.jpg", "Jo_Doe",
                                 keypoints)
  parsed = tf.io.parse_single_example(example.SerializeToString(), records.FEATURES)
  assert parsed["image/encoded"].numpy() == b"\x89PNG bytes"
  assert int(parsed["image/height"]) == 120 and int(parsed["image/width"]) == 90
  assert parsed["image/file_name"].numpy() == b"Jo_Doe_01.jpg"
  assert parsed["image/person_id"].numpy() == b"Jo_Doe"
  np.testing.assert_array_equal(parsed["keypoints/px"].numpy(), keypoints)


def test_shard_names_sort_in_order():
  names = [records.shard_name("train", i, 12) for i in range(12)]
  assert names == sorted(names)
  assert names[3] == "train-00003-of-00012.tfrecord"


def test_dataset_info_of_the_converted_fixture(tfrecord_dir):
  info = records.read_dataset_info(tfrecord_dir)
  assert info["format_version"] == records.FORMAT_VERSION
  paths = records.shard_paths(tfrecord_dir, "train", info)
  assert paths and all(os.path.isfile(p) for p in paths)
  total = sum(1 for _ in tf.data.TFRecordDataset(paths))
  assert total == info["splits"]["train"]["count"]


def test_missing_folder_and_wrong_version_are_named(tmp_path, tfrecord_dir):
  with pytest.raises(records.DatasetError, match=str(tmp_path / "nowhere")):
    records.read_dataset_info(str(tmp_path / "nowhere"))
  copy = tmp_path / "copy"
  copy.mkdir()
  info = json.load(open(os.path.join(tfrecord_dir, records.DATASET_INFO)))
  info["format_version"] = 999
  (copy / records.DATASET_INFO).write_text(json.dumps(info))
  with pytest.raises(records.DatasetError, match="999"):
    records.read_dataset_info(str(copy))


def _copy_of(tfrecord_dir, folder):
  shutil.copytree(tfrecord_dir, folder)
  info = json.load(open(os.path.join(folder, records.DATASET_INFO)))
  return info, os.path.join(folder, info["splits"]["test"]["shards"][0]["file"])


@pytest.mark.parametrize("damage", ["truncated", "one byte flipped", "emptied"])
def test_a_shard_that_is_not_the_converters_is_named_before_reading(tfrecord_dir, tmp_path,
                                                                    damage):
  folder = str(tmp_path / "records")
  info, shard = _copy_of(tfrecord_dir, folder)
  assert len(records.shard_paths(folder, "test", info)) == 1  # whole: accepted
  data = open(shard, "rb").read()
  data = {"truncated": data[:-500], "emptied": b"",
          "one byte flipped": data[:300] + bytes([data[300] ^ 1]) + data[301:]}[damage]
  with open(shard, "wb") as f:
    f.write(data)
  # Read, these failed mid-split as "DataLossError: truncated record at ..." or
  # "corrupted record at ...", or with the assertion of some record, naming no file.
  with pytest.raises(records.DatasetError,
                     match=rf"^shard '{shard}' of split 'test' is not the file the converter "
                           rf"wrote: .* \({len(data)} bytes now\); it was truncated, damaged "
                           "or edited: convert the data again$"):
    records.shard_paths(folder, "test", info)
  records.shard_paths(folder, "train", info)  # the other splits' shards are fine
