r"""Recovers a run folder from one network of an exported SavedModel.

  python -m tools.recover_stage --saved_model=fkd_tf/shipped/fkd_default/2 --stage=0 \
    --flagfile=configs/fast_coarse.flags --model_dir=runs/fast_coarse

A new cascade can then reuse a shipped network (`fkd_tf.export --model_dirs=runs/...`)
without training it again. Exports hold networks in inference form (batch norm folded into
the convolution before it, `fkd_tf.serving.fold`); the run folder gets the training form
back exactly: each folded convolution's kernel and bias, and an identity batch norm
(gamma 1, beta the folded bias, mean 0, variance 1 - epsilon). The run's settings come from
the flagfile that trained it (the export keeps only the framing); the folder is marked as
recovered in its flags.txt.
"""

import os
import sys

from absl import app, flags
import numpy as np

from fkd_tf import train
from fkd_tf.cli import command

FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_string("saved_model", None, "The exported version folder holding the network.")
  flags.DEFINE_integer("stage", 0, "Which network of the export (0: the first pass).")


def unfolded_weights(network, folded_variables):
  """The training-form weights of `network` from its exported (folded) variables, in order.

  Args:
    network: a freshly built network of the run's model (with its batch norms).
    folded_variables: the export's variables of that network (or a folded Keras network's).
  Returns:
    {layer name: weights} for every layer with weights.
  Raises:
    ValueError when the variables do not belong to this architecture.
  """
  from fkd_tf.serving import fold  # pylint: disable=g-import-not-at-top  (TensorFlow)
  folded = fold.inference_network(network)
  # Keras variables know their layer as `path` ("stem/kernel"); the SavedModel's tf.Variables
  # carry it in their name ("stem/kernel:0").
  values = {getattr(v, "path", None) or v.name.split(":")[0]: np.asarray(v)
            for v in folded_variables}
  weights = {}
  for layer in folded.layers:
    for variable in layer.weights:
      key = variable.path
      if key not in values or values[key].shape != tuple(variable.shape):
        raise ValueError(f"the export has no variable {key} shaped {tuple(variable.shape)}: "
                         "is --flagfile the one that trained this stage?")
    weights[layer.name] = [values[v.path] for v in layer.weights]
  restored = {}
  for layer in network.layers:
    if not layer.weights:
      continue
    if layer.name in weights:
      kernel, *bias = weights[layer.name]
      restored[layer.name] = [kernel] + (bias if layer.use_bias else [])
      continue
    # A batch norm folded into the convolution before it: the identity after that bias.
    conv_name = layer.name[:-len("_bn")]
    folded_bias = weights[conv_name][1]
    restored[layer.name] = [np.ones_like(folded_bias), folded_bias,
                            np.zeros_like(folded_bias),
                            np.full_like(folded_bias, 1.0 - layer.epsilon)]
  return restored


def main(argv):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from fkd_tf.training import train_lib  # pylint: disable=g-import-not-at-top
  from fkd_tf.serving import run_folder  # pylint: disable=g-import-not-at-top
  from fkd_tf.utils import io_utils  # pylint: disable=g-import-not-at-top
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  config = train.config_from_flags()
  exported = tf.saved_model.load(FLAGS.saved_model)
  network = train_lib.build_network(config)
  try:
    restored = unfolded_weights(network, exported.network_weights[FLAGS.stage])
  except (ValueError, IndexError) as e:
    sys.exit(f"error: --saved_model={FLAGS.saved_model} --stage={FLAGS.stage}: {e}")
  for layer in network.layers:
    if layer.name in restored:
      layer.set_weights(restored[layer.name])
  os.makedirs(config.model_dir, exist_ok=True)
  io_utils.write_json(os.path.join(config.model_dir, run_folder.CONFIG),
                      train_lib.config_to_json(config))
  io_utils.write_text(os.path.join(config.model_dir, "flags.txt"),
                      f"# recovered from {FLAGS.saved_model} stage {FLAGS.stage} by "
                      f"tools.recover_stage\n{train.project_flags_text()}")
  with io_utils.atomic_path(os.path.join(config.model_dir, run_folder.BEST_WEIGHTS),
                             suffix=".weights.h5") as path:
    network.save_weights(path)
  print(f"wrote {config.model_dir} from {FLAGS.saved_model} stage {FLAGS.stage}")


def run():
  def define_all():
    train.define_flags()
    define_flags()
  command.run(main, define_all)


if __name__ == "__main__":
  run()
