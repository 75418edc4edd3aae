r"""Imports the PyTorch original's trained weights into fkd_tf's ppbnet as a finished run.

  python -m tools.import_original_weights --npz=../shared/seed/ppb_fkdnet_weights.npz \
      --model_dir=runs/original --tfrecord_dir=data/tfrecords

The run folder holds what `python -m fkd_tf.train --flagfile=configs/base.flags` leaves for
`fkd_tf.serving.run_folder.load_network`: config.json (base.flags' TrainConfig), dataset_info.json,
flags.txt and best.weights.h5 (the network's own weights), plus imported_from.json saying
where the weights came from. So `python -m fkd_tf.export --model_dirs=<model_dir>` and
evaluation take it as they take a trained run. The folder is written under a temporary name
and renamed when complete.

The npz layout is the original's (see ../shared/seed/README.md): PyTorch [out, in, kh, kw]
kernels, conv3's inputs ordered cat((pooled, branch)), FC1's inputs the NCHW flatten of
[64, 4, 4].
"""

import dataclasses
import os
import shutil
import sys
import tempfile

from absl import app, flags
import numpy as np

from fkd_tf.cli import command
from fkd_tf.utils import io_utils

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASE_FLAGS = os.path.join(REPO, "configs", "base.flags")
PROVENANCE = "imported_from.json"

# Every array the import needs, with its PyTorch shape.
ORIGINAL_SHAPES = {
    "conv1_weight": (32, 1, 3, 3), "conv1_bias": (32,),
    "conv2_weight": (32, 32, 1, 1), "conv2_bias": (32,),
    "conv3_weight": (64, 64, 3, 3), "conv3_bias": (64,),
    "conv4_weight": (64, 64, 2, 2), "conv4_bias": (64,),
    "conv5_weight": (64, 64, 3, 3), "conv5_bias": (64,),
    "FC1_weight": (136, 1024), "FC1_bias": (136,),
}

# ppbnet's layer <- the original's layer. ppbnet counts the 1x1 branch as "conv1x1", so
# the original's conv3..conv5 are ppbnet's conv2..conv4.
KERAS_FROM_ORIGINAL = {
    "conv1": "conv1", "conv1x1": "conv2", "conv2": "conv3", "conv3": "conv4",
    "conv4": "conv5", "keypoints": "FC1",
}

BRANCH_CHANNELS = 32  # of the 1x1 branch; the pooled map has as many
FLAT_SHAPE_CHW = (64, 4, 4)  # the last pooled map, as PyTorch flattens it


def read_original_weights(npz_path):
  """Loads the original's arrays and checks each one's presence and shape.

  Returns:
    dict name -> float32 numpy array (only the names of ORIGINAL_SHAPES).
  Raises:
    ValueError naming the file and every missing or misshapen array.
  """
  with np.load(npz_path) as npz:
    arrays = {name: npz[name] for name in npz.files}
  problems = []
  for name, shape in ORIGINAL_SHAPES.items():
    if name not in arrays:
      problems.append(f"{name} is missing")
    elif arrays[name].shape != shape:
      problems.append(f"{name} has shape {arrays[name].shape}, expected {shape}")
    elif not np.all(np.isfinite(arrays[name])):
      problems.append(f"{name} holds NaN or infinite values")
  if problems:
    raise ValueError(f"{npz_path}: not the original's weights:\n  " + "\n  ".join(problems))
  return {name: arrays[name].astype(np.float32) for name in ORIGINAL_SHAPES}


def keras_kernel_from_torch_conv(weight):
  """PyTorch Conv2d weight [out, in, kh, kw] -> Keras Conv2D kernel [kh, kw, in, out]."""
  return np.transpose(weight, (2, 3, 1, 0))


def fused_channel_order():
  """For each input channel of ppbnet's conv2, the original conv3 input channel it is.

  ppbnet's `fuse` concatenates [branch, pooled]; the original's cat((pooled, branch)) puts
  pooled first. Keras channel i < 32 is branch channel i = original channel 32 + i.
  """
  return np.concatenate([np.arange(BRANCH_CHANNELS, 2 * BRANCH_CHANNELS),
                         np.arange(BRANCH_CHANNELS)])


def nchw_index_of_nhwc_flatten(shape_chw=FLAT_SHAPE_CHW):
  """For each position of Keras' NHWC flatten (h*W*C + w*C + c), the index of the same
  value in PyTorch's NCHW flatten (c*H*W + h*W + w)."""
  return np.arange(np.prod(shape_chw)).reshape(shape_chw).transpose(1, 2, 0).reshape(-1)


def keras_weights_from_original(arrays):
  """The original's arrays laid out as ppbnet's layers want them.

  Returns:
    dict ppbnet layer name -> [kernel, bias].
  """
  weights = {}
  for keras_name, torch_name in KERAS_FROM_ORIGINAL.items():
    weight, bias = arrays[torch_name + "_weight"], arrays[torch_name + "_bias"]
    if torch_name == "FC1":
      kernel = weight[:, nchw_index_of_nhwc_flatten()].T
    else:
      if torch_name == "conv3":
        weight = weight[:, fused_channel_order()]
      kernel = keras_kernel_from_torch_conv(weight)
    weights[keras_name] = [np.ascontiguousarray(kernel), bias]
  return weights


def set_original_weights(network, arrays):
  """Puts the original's weights into a ppbnet (`models.ppbnet()`); checks every shape."""
  for name, values in keras_weights_from_original(arrays).items():
    layer = network.get_layer(name)
    expected = [tuple(w.shape) for w in layer.get_weights()]
    if expected != [v.shape for v in values]:
      raise ValueError(f"layer {name!r} of {network.name} wants shapes {expected}, the "
                       f"original's weights give {[v.shape for v in values]}: not a ppbnet "
                       "at 90x90?")
    layer.set_weights(values)


def config_from_flagfile(flagfile, model_dir, tfrecord_dir):
  """The TrainConfig that `fkd_tf.train --flagfile=<flagfile> --model_dir --tfrecord_dir`
  builds, read by the trainer's own flag definitions (`fkd_tf.cli.train_flags`).

  Raises:
    ValueError naming the flagfile and an unknown setting, a bad value or a bad setting.
  """
  # pylint: disable=g-import-not-at-top  (TensorFlow only once there is work: a fast --help)
  from absl import app as absl_app
  from fkd_tf.cli import train_flags
  try:
    return train_flags.config_from_flagfile(flagfile, model_dir=model_dir,
                                            tfrecord_dir=tfrecord_dir)
  except (flags.Error, absl_app.UsageError) as e:
    raise ValueError(f"{flagfile}: {e}") from None


def flags_text(config):
  """The run's flags in flagfile form, as a trained run's flags.txt lets one rerun it."""
  values = dataclasses.asdict(config)
  values.update(values.pop("augment"))
  return "".join(f"--{name}={str(value).lower() if isinstance(value, bool) else value}\n"
                 for name, value in sorted(values.items()))


def write_run_folder(folder, config, arrays, dataset_info, provenance):
  """Writes config.json, dataset_info.json, flags.txt, best.weights.h5 and provenance.

  best.weights.h5 holds the network's own weights, as training's checkpoint does, so
  `run_folder.load_network` (models.build + load_weights) reads it back.
  """
  # pylint: disable=g-import-not-at-top  (TensorFlow only once there is work: a fast --help)
  from fkd_tf.core import models
  from fkd_tf.serving import run_folder
  from fkd_tf.training import train_lib
  network = models.build(config.model)
  set_original_weights(network, arrays)
  with io_utils.atomic_path(os.path.join(folder, run_folder.BEST_WEIGHTS),
                            suffix=".weights.h5") as tmp:
    network.save_weights(tmp)
  io_utils.write_json(os.path.join(folder, "config.json"), train_lib.config_to_json(config))
  io_utils.write_json(os.path.join(folder, "dataset_info.json"), dataset_info)
  io_utils.write_text(os.path.join(folder, "flags.txt"), flags_text(config))
  io_utils.write_json(os.path.join(folder, PROVENANCE), provenance)
  return network


def import_weights(npz_path, model_dir, tfrecord_dir, flagfile=BASE_FLAGS, overwrite=False):
  """Writes a finished-run folder of ppbnet holding the original's weights.

  Args:
    npz_path: the original's weights (ppb_fkdnet_weights.npz layout).
    model_dir: the run folder to create; config.json records it as given.
    tfrecord_dir: the converted data set whose dataset_info.json the run records.
    flagfile: the training configuration the run claims (configs/base.flags: the
      original's recipe).
    overwrite: replace an existing model_dir (otherwise that is an error).
  Returns:
    The ppbnet with the original's weights.
  Raises:
    ValueError for bad weights or settings; FileExistsError; records.DatasetError.
  """
  from fkd_tf.data import records  # pylint: disable=g-import-not-at-top  (TensorFlow)
  if os.path.lexists(model_dir) and not overwrite:
    raise FileExistsError(f"{model_dir!r} exists; pass --overwrite to replace it")
  arrays = read_original_weights(npz_path)
  config = config_from_flagfile(flagfile, model_dir, tfrecord_dir)
  dataset_info = records.read_dataset_info(tfrecord_dir)
  provenance = {"npz": os.path.abspath(npz_path), "npz_sha256": io_utils.sha256_of(npz_path),
                "flagfile": os.path.relpath(flagfile, REPO)}
  with np.load(npz_path) as npz:
    if "epoch" in npz.files:
      provenance["original_epoch"] = int(npz["epoch"])

  final = os.path.abspath(model_dir)
  parent = os.path.dirname(final)
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(final)}.", suffix=".tmp", dir=parent)
  os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp's 0700 would hide the run from other users
  try:
    network = write_run_folder(tmp, config, arrays, dataset_info, provenance)
    io_utils.replace_path(tmp, final)
  finally:
    if os.path.exists(tmp):
      shutil.rmtree(tmp)
  return network


def _umask():
  umask = os.umask(0)
  os.umask(umask)
  return umask


FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_string("npz", None, "The original's weights (ppb_fkdnet_weights.npz).")
  flags.DEFINE_string("model_dir", None, "Run folder to create.")
  flags.DEFINE_string("tfrecord_dir", "data/tfrecords", "Converted data set the run records "
                      "(its dataset_info.json) and later evaluates on.")
  flags.DEFINE_string("flagfile_of_run", BASE_FLAGS, "Training configuration the run folder "
                      "claims; the original's recipe is configs/base.flags.")
  flags.DEFINE_bool("overwrite", False, "Replace an existing --model_dir.")
  flags.mark_flags_as_required(["npz", "model_dir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  try:
    import_weights(FLAGS.npz, FLAGS.model_dir, FLAGS.tfrecord_dir, FLAGS.flagfile_of_run,
                   FLAGS.overwrite)
  except (ValueError, OSError) as e:  # records.DatasetError is a ValueError
    sys.exit(f"error: {e}")
  print(f"wrote {FLAGS.model_dir}: ppbnet with the original's weights from {FLAGS.npz}")


def run():
  """The `fkd-import-original` console command."""
  command.run(main, define_flags)


if __name__ == "__main__":
  run()
