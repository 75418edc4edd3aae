"""core.framing.Framing: the one value for how a network sees a face."""

import json

import numpy as np
import tensorflow as tf

from fkd_tf.core import config as config_lib
from fkd_tf.core.augment_config import AugmentConfig
from fkd_tf.core.framing import Framing
from fkd_tf.serving import versions


def test_a_runs_framing_comes_from_its_settings():
  whole = config_lib.TrainConfig(tfrecord_dir="d", model_dir="m", normalisation="centered",
                                 augment=AugmentConfig(rescale_size=100.0))
  assert Framing.of_config(whole) == Framing(100.0, "centered", None, False)
  refining = config_lib.TrainConfig(
      tfrecord_dir="d", model_dir="m", augment=AugmentConfig(
          rescale_size=90.0, region="keypoints", region_margin=1.25, original_rounding=True))
  assert Framing.of_config(refining) == Framing(90.0, "original", 1.25, True)


def test_export_metadata_reads_back_and_older_exports_still_read():
  framing = Framing(90.0, "centered", 1.25, True)
  assert Framing.from_json(json.loads(json.dumps(framing.to_json()))) == framing
  older = {"rescale_size": 100, "normalisation": "original", "region_margin": None}
  assert Framing.from_json(older) == Framing(100.0, "original")
  # The shipped model's stages read as the framings they were exported with.
  metadata = json.load(open(f"{versions.resolve_saved_model(versions.SHIPPED_MODEL)}"
                            "/assets.extra/fkd_tf.json"))
  framings = [Framing.from_json(stage) for stage in metadata["stages"]]
  assert [f.region_margin for f in framings] == [None, 1.25, 1.25]


def test_regions_frame_the_whole_image_or_a_square_around_the_keypoints():
  keypoints = np.tile([[10.0, 20.0], [50.0, 40.0]], (34, 1))[np.newaxis].astype(np.float32)
  image_size = tf.constant([[120, 200]])  # height, width
  np.testing.assert_allclose(Framing(100.0, "original").regions(image_size, keypoints),
                             [[0.0, 0.0, 200.0, 120.0]])
  # A square of 1.5 x the box's larger side (40 px), centred on the box (30, 30).
  np.testing.assert_allclose(Framing(90.0, "centered", 1.5).regions(image_size, keypoints),
                             [[0.0, 0.0, 60.0, 60.0]])
