"""A trained network turned into its inference form for export: batch norm folded into the
convolution before it, and (optionally) weights rounded to float16.

Export computes with this form in both places it writes, the SavedModel and the LiteRT
files, so the two compute with the same weights: the LiteRT converter folds batch norm
itself before it rounds to float16, and rounding unfolded weights instead left the two
paths up to 0.85 px apart on one of 256 whole val images (the coarse stage's change moved
the refining frame). Folding also spares the served graph one op per convolution.
"""

import keras
import numpy as np

_CONVOLUTIONS = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)


def _producer(layer):
  """The layer whose output `layer` takes (its only input)."""
  return layer.input._keras_history.operation  # pylint: disable=protected-access


def _foldable(network):
  """{convolution name: the BatchNormalization after it}, for convolutions whose only
  consumer is that batch norm (anything else reading the convolution's output would see
  the folded values)."""
  consumers = {}
  for layer in network.layers:
    for node in layer._inbound_nodes:  # pylint: disable=protected-access
      for tensor in keras.tree.flatten(node.input_tensors):
        consumers.setdefault(tensor._keras_history.operation.name, []).append(layer)  # pylint: disable=protected-access
  folds = {}
  for layer in network.layers:
    if isinstance(layer, keras.layers.BatchNormalization) and layer.axis in (-1, [-1], 3, [3]):
      producer = _producer(layer)
      if (isinstance(producer, _CONVOLUTIONS) and producer.activation is keras.activations.linear
          and len(consumers.get(producer.name, [])) == 1):
        folds[producer.name] = layer
  return folds


def _folded_weights(convolution, batch_norm):
  """The kernel and bias of `convolution` followed by `batch_norm` at inference."""
  kernel = np.asarray(convolution.kernel, np.float64)
  depthwise = isinstance(convolution, keras.layers.DepthwiseConv2D)
  channels = kernel.shape[2] * kernel.shape[3] if depthwise else kernel.shape[3]
  bias = (np.asarray(convolution.bias, np.float64) if convolution.use_bias
          else np.zeros(channels))
  gamma = (np.asarray(batch_norm.gamma, np.float64) if batch_norm.scale
           else np.ones_like(bias))
  beta = np.asarray(batch_norm.beta, np.float64) if batch_norm.center else np.zeros_like(bias)
  mean = np.asarray(batch_norm.moving_mean, np.float64)
  variance = np.asarray(batch_norm.moving_variance, np.float64)
  scale = gamma / np.sqrt(variance + batch_norm.epsilon)
  if depthwise:
    # Output channel c * multiplier + m comes from input channel c.
    kernel = kernel * scale.reshape(kernel.shape[2], kernel.shape[3])
  else:
    kernel = kernel * scale
  return [kernel.astype(np.float32), ((bias - mean) * scale + beta).astype(np.float32)]


def inference_network(network, float16=False):
  """A copy of `network` computing what it computes at inference, with each foldable
  batch norm merged into its convolution (and gone from the graph) and, with
  float16, every weight rounded to the nearest float16. `network` itself is unchanged."""
  folds = _foldable(network)
  folded_names = {batch_norm.name for batch_norm in folds.values()}

  def clone_layer(layer):
    config = layer.get_config()
    if layer.name in folds:
      config["use_bias"] = True
    return layer.__class__.from_config(config)

  def call_layer(layer, inputs, *args, **kwargs):
    if layer.name in folded_names:
      return inputs  # folded into the convolution before it: the layer drops out
    return layer(inputs, *args, **kwargs)

  copy = keras.models.clone_model(network, clone_function=clone_layer,
                                  call_function=call_layer)
  for original in network.layers:
    if original.name in folded_names or not original.weights:
      continue  # folded away, or nothing to copy (the input layer, pools, activations)
    layer = copy.get_layer(original.name)
    if original.name in folds:
      weights = _folded_weights(original, folds[original.name])
    else:
      weights = original.get_weights()
    if float16:
      weights = [np.asarray(w).astype(np.float16).astype(np.float32) for w in weights]
    layer.set_weights(weights)
  return copy
