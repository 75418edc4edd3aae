import json
import os
import shutil
import struct

import numpy as np
import pytest
import tensorflow as tf

from conftest import REPO
from fkd_tf.data import decode, pipeline, records
import fakes

# The real data set converted (`python -m tools.convert_to_tfrecord`), when it is there.
REAL_RECORDS = os.path.join(REPO, "data", "tfrecords")

# Smooth, so that lossy JPEG stays close to it.
GRAY = (np.add.outer(np.arange(50) * 2, np.arange(60) * 2) + 20).astype(np.uint8)


@pytest.mark.parametrize("fmt,mode", [("PNG", "L"), ("PNG", "RGB"), ("PNG", "RGBA"),
                                      ("PNG", "LA"), ("JPEG", "L"), ("JPEG", "RGB")])
def test_decode_gray_any_format(fmt, mode):
  image = decode.decode_gray(tf.constant(fakes.encode(GRAY, fmt, mode))).numpy()
  assert image.shape == (50, 60, 1) and image.dtype == np.uint8
  tolerance = 3 if fmt == "JPEG" else 1  # lossy JPEG; gray<->RGB rounding for PNG
  assert np.abs(image[..., 0].astype(int) - GRAY.astype(int)).mean() < tolerance


def test_not_an_image_names_the_input():
  with pytest.raises(tf.errors.InvalidArgumentError, match="image is not a PNG, JPEG"):
    decode.decode_gray(tf.constant(b"definitely not pixels"))


def test_dataset_shapes_dtypes_and_padding(tfrecord_dir):
  dataset = pipeline.make_dataset(tfrecord_dir, "train", 5, training=True,
                                        with_names=True)
  batches = list(dataset)
  assert sum(int(b["image"].shape[0]) for b in batches) == 24
  for batch in batches:
    sizes = batch["image_size"].numpy()
    assert batch["image"].dtype == tf.uint8
    assert batch["image"].shape[1:] == (sizes[:, 0].max(), sizes[:, 1].max(), 1)
    assert batch["keypoints_px"].shape[1:] == (68, 2)
    for image, (h, w) in zip(batch["image"].numpy(), sizes):
      assert image[h:].max(initial=0) == 0 and image[:, w:].max(initial=0) == 0
      assert image[:h, :w].max() > 200  # the keypoint dots survive decoding
  assert len(batches) == dataset.cardinality().numpy() == 5


def test_training_order_changes_each_epoch_but_not_with_the_seed(tfrecord_dir):
  names = lambda ds: [n for b in ds for n in b["file_name"].numpy()]
  dataset = pipeline.make_dataset(tfrecord_dir, "train", 4, training=True, seed=3,
                                        with_names=True)
  first, second = names(dataset), names(dataset)
  assert sorted(first) == sorted(second) and first != second
  same = pipeline.make_dataset(tfrecord_dir, "train", 4, training=True, seed=3,
                                     with_names=True)
  assert names(same) == first
  evaluation = pipeline.make_dataset(tfrecord_dir, "val", 4, training=False,
                                           with_names=True)
  assert names(evaluation) == names(evaluation)


@pytest.mark.slow
def test_max_examples_and_worker_sharding(tfrecord_dir):
  count = lambda ds: sum(int(b["image"].shape[0]) for b in ds)
  assert count(pipeline.make_dataset(tfrecord_dir, "train", 4, False,
                                           max_examples=7)) == 7
  halves = [count(pipeline.make_dataset(tfrecord_dir, "train", 4, False,
                                              num_input_pipelines=2, input_pipeline_id=i))
            for i in range(2)]
  assert halves == [12, 12]


def test_header_pixels_of_every_format():
  in_graph = tf.function(decode.header_pixels)
  for fmt in ("PNG", "JPEG", "GIF", "BMP"):
    encoded = tf.constant(fakes.encode(np.zeros((37, 53), np.uint8), fmt))
    assert int(decode.header_pixels(encoded)) == 37 * 53, fmt
    assert int(in_graph(encoded)) == 37 * 53, fmt
  # Too short to hold the size field: unknown, and the decoder refuses the bytes.
  assert int(decode.header_pixels(tf.constant(b"GIF89a\x01"))) == -1
  assert int(decode.header_pixels(tf.constant(b"BM" + bytes(20)))) == -1


def _gif_header(width, height):
  # Signature, logical screen width and height (little-endian), flags, background, aspect.
  return b"GIF89a" + struct.pack("<HHBBB", width, height, 0, 0, 0)


def _bmp_header(width, height):
  # File header (14 bytes), then BITMAPINFOHEADER: size 40, signed width and height, ...
  return (b"BM" + struct.pack("<IHHI", 54, 0, 0, 54) +
          struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 0, 0, 0, 0))


@pytest.mark.parametrize("header,pixels", [
    (_gif_header(12000, 12000), 144_000_000),  # a 107 KB GIF of this size decodes to 4.6 GB
    (_bmp_header(7200, 7200), 51_840_000),
    (_bmp_header(7200, -7200), 51_840_000)],  # negative height: rows stored top-down
    ids=["gif_12000x12000", "bmp_7200x7200", "bmp_7200x-7200_top_down"])
def test_gif_and_bmp_headers_over_the_limit_are_refused_before_decoding(header, pixels):
  assert int(decode.header_pixels(tf.constant(header))) == pixels
  with pytest.raises(tf.errors.InvalidArgumentError, match="image is too large"):
    decode.decode_gray(tf.constant(header + bytes(64)))
  with pytest.raises(tf.errors.InvalidArgumentError, match="image is too large"):
    tf.function(decode.decode_gray)(tf.constant(header + bytes(64)))


def test_max_pixels_refuses_a_png_over_the_limit():
  with pytest.raises(tf.errors.InvalidArgumentError, match="too large"):
    decode.decode_gray(tf.constant(fakes.encode(np.zeros((40, 40), np.uint8))),
                       max_pixels=1000)


@pytest.mark.slow
def test_several_splits_are_read_as_one_shuffled_set(tfrecord_dir):
  names = lambda ds: [n for b in ds for n in b["file_name"].numpy()]
  train = names(pipeline.make_dataset(tfrecord_dir, "train", 4, False, with_names=True))
  val = names(pipeline.make_dataset(tfrecord_dir, "val", 4, False, with_names=True))
  both = pipeline.make_dataset(tfrecord_dir, "train,val", 4, True, with_names=True)
  assert sorted(names(both)) == sorted(train + val) and len(train + val) == 24 + 6
  assert both.cardinality().numpy() == 8  # ceil(30 / 4)
  order = names(both)
  assert set(order[:6]) & set(val) and set(order[-6:]) & set(train)  # mixed, not chained


@pytest.mark.skipif(not os.path.isfile(os.path.join(REAL_RECORDS, "dataset_info.json")),
                    reason=f"the real data set is not converted at {REAL_RECORDS}")
@pytest.mark.slow
def test_train_and_val_are_the_originals_3462_training_faces():
  dataset = pipeline.make_dataset(REAL_RECORDS, "train,val", 64, training=True,
                                  with_names=True, cache=False)
  sizes, names = [], set()
  for batch in dataset:
    sizes.append(int(batch["image"].shape[0]))
    names.update(batch["file_name"].numpy())
  # The original's 55 batches of 64 an epoch, the last one 6 faces, each face once.
  assert len(sizes) == dataset.cardinality().numpy() == 55
  assert sum(sizes) == len(names) == 3462 and sizes.count(64) == 54 and 6 in sizes


def _records_without_hashes(tfrecord_dir, folder, change):
  """A copy of the test split rewritten by change(list of Example) outside the converter:
  dataset_info.json lists no sha256, as a hand-made set's may not."""
  shutil.copytree(tfrecord_dir, folder)
  info = json.load(open(os.path.join(folder, records.DATASET_INFO)))
  shard = os.path.join(folder, info["splits"]["test"]["shards"][0]["file"])
  examples = [tf.train.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset(shard)]
  change(examples)
  with tf.io.TFRecordWriter(shard) as writer:
    for example in examples:
      writer.write(example.SerializeToString())
  for split in info["splits"].values():
    for entry in split["shards"]:
      entry.pop("sha256")
  with open(os.path.join(folder, records.DATASET_INFO), "w") as f:
    json.dump(info, f)
  return examples[1].features.feature["image/file_name"].bytes_list.value[0].decode()


def _two_keypoint_values_fewer(examples):
  del examples[1].features.feature["keypoints/px"].float_list.value[-2:]


def _not_an_image(examples):
  examples[1].features.feature["image/encoded"].bytes_list.value[0] = b"hello" * 30


def _a_nan_keypoint(examples):
  examples[1].features.feature["keypoints/px"].float_list.value[7] = float("nan")


def _eye_corners_at_one_spot(examples):
  values = examples[1].features.feature["keypoints/px"].float_list.value
  values[2 * 45:2 * 45 + 2] = values[2 * 36:2 * 36 + 2]


@pytest.mark.parametrize("change, message", [
    (_two_keypoint_values_fewer, r"\[holds\] \[134\] \[keypoint values, not 136\]"),
    (_not_an_image, r"\[holds no PNG, JPEG, GIF or BMP image\]"),
    (_a_nan_keypoint, r"\[holds keypoints that are NaN or infinite\]"),
    (_eye_corners_at_one_spot, r"\[holds its outer eye corners \(points 36 and 45\) at one "
                               r"spot\]"),
])
def test_a_bad_record_is_refused_naming_its_face(tfrecord_dir, tmp_path, change, message):
  folder = str(tmp_path / "records")
  name = _records_without_hashes(tfrecord_dir, folder, change)
  dataset = pipeline.make_dataset(folder, "test", 4, training=False, cache=False)
  # Before: "Key: keypoints/px. Can't parse serialized Example", "image is not a PNG, ...",
  # or no error at all and an NME_io of NaN; none named the face.
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match=rf"\[the record of\] \[{name}\] " + message):
    list(dataset)
