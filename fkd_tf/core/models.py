"""Keypoint networks: [N, 90, 90, 1] gray in [0, 1] -> [N, 136] normalised keypoints.

Knows nothing of files, flags or data; each builder takes sizes and returns a functional
keras.Model. The final layer computes in float32 so mixed precision leaves outputs exact.
"""

import keras
from keras import layers

from fkd_tf.keypoints import NET_SIZE, NUM_KEYPOINTS

# PyTorch's default Conv/Linear init is kaiming_uniform(a=sqrt(5)): U(+-1/sqrt(fan_in)),
# i.e. VarianceScaling(1/3, fan_in, uniform). ppbnet uses it to start where the original did.
TORCH_DEFAULT_INIT = keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform")


def ppbnet(input_size=NET_SIZE, num_outputs=2 * NUM_KEYPOINTS):
  """The PyTorch original's network, layer for layer (231,080 parameters at 90x90).

  conv3x3/32 SELU -> pool (p1); conv1x1/32 SELU on p1, concatenated with p1 (the
  spatial-fusion branch, 64 channels); conv3x3/64, conv2x2/64, conv3x3/64, each SELU then
  pool; flatten 4x4x64; dense 136 with SELU. All convolutions 'valid'.
  """
  conv = lambda filters, size, name: layers.Conv2D(
      filters, size, padding="valid", activation="selu",
      kernel_initializer=TORCH_DEFAULT_INIT, name=name)
  images = keras.Input((input_size, input_size, 1), name="images")
  p1 = layers.MaxPooling2D(2, name="pool1")(conv(32, 3, "conv1")(images))
  fused = layers.Concatenate(name="fuse")([conv(32, 1, "conv1x1")(p1), p1])
  x = layers.MaxPooling2D(2, name="pool2")(conv(64, 3, "conv2")(fused))
  x = layers.MaxPooling2D(2, name="pool3")(conv(64, 2, "conv3")(x))
  x = layers.MaxPooling2D(2, name="pool4")(conv(64, 3, "conv4")(x))
  x = layers.Flatten(name="flatten")(x)
  x = layers.Dense(num_outputs, activation="selu", kernel_initializer=TORCH_DEFAULT_INIT,
                   name="keypoints")(x)
  outputs = layers.Activation("linear", dtype="float32", name="keypoints_norm")(x)
  return keras.Model(images, outputs, name="ppbnet")


def fknet(input_size=NET_SIZE, num_outputs=2 * NUM_KEYPOINTS, widths=(16, 32, 64, 128),
          dropout=0.0):
  """A plain VGG-style regressor: per stage two conv3x3+BN+ReLU, then a 2x2 pool.

  Like ppbnet it fuses a 1x1 branch with the first pooled features (Concatenate), but
  uses 'same' padding, BatchNorm and a linear head, which lets outputs reach the whole
  frame (ppbnet's SELU head cannot go below -1.76 in its units).
  """
  def conv_bn(x, filters, size, name):
    x = layers.Conv2D(filters, size, padding="same", use_bias=False, name=name)(x)
    x = layers.BatchNormalization(name=name + "_bn")(x)
    return layers.ReLU(name=name + "_relu")(x)

  images = keras.Input((input_size, input_size, 1), name="images")
  x = conv_bn(images, widths[0], 3, "stage1_conv1")
  x = conv_bn(x, widths[0], 3, "stage1_conv2")
  p1 = layers.MaxPooling2D(2, name="stage1_pool")(x)
  x = layers.Concatenate(name="fuse")([conv_bn(p1, widths[0], 1, "fuse_conv1x1"), p1])
  for stage, filters in enumerate(widths[1:], start=2):
    x = conv_bn(x, filters, 3, f"stage{stage}_conv1")
    x = conv_bn(x, filters, 3, f"stage{stage}_conv2")
    x = layers.MaxPooling2D(2, name=f"stage{stage}_pool")(x)
  x = layers.Flatten(name="flatten")(x)
  if dropout:
    x = layers.Dropout(dropout, name="dropout")(x)
  x = layers.Dense(num_outputs, name="keypoints")(x)
  outputs = layers.Activation("linear", dtype="float32", name="keypoints_norm")(x)
  return keras.Model(images, outputs, name="fknet")


MODELS = {"ppbnet": ppbnet, "fknet": fknet}


def build(name, **kwargs):
  """The network called `name` (a key of MODELS)."""
  if name not in MODELS:
    raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
  return MODELS[name](**kwargs)


def forward_flops(network):
  """Multiply-adds x 2 of the Conv2D, DepthwiseConv2D and Dense layers, per image."""
  total = 0
  for layer in network.layers:
    if isinstance(layer, layers.DepthwiseConv2D):
      _, height, width, channels = layer.output.shape
      kh, kw = layer.kernel_size
      total += 2 * height * width * channels * kh * kw
    elif isinstance(layer, layers.Conv2D):
      _, height, width, filters = layer.output.shape
      kh, kw = layer.kernel_size
      total += 2 * height * width * filters * kh * kw * layer.input.shape[-1]
    elif isinstance(layer, layers.Dense):
      total += 2 * layer.input.shape[-1] * layer.units
  return int(total)


# A training image costs its forward pass plus a backward pass of about twice as much.
TRAIN_FLOPS_FACTOR = 3
