"""Keypoint networks: [N, 90, 90, 1] gray in [0, 1] -> [N, 136] normalised keypoints.

Knows nothing of files, flags or data; each builder takes sizes and returns a functional
keras.Model. The final layer computes in float32 so mixed precision leaves outputs exact.
"""

import keras
from keras import layers

from fkd_tf.core.keypoints import NET_SIZE, NUM_KEYPOINTS

# PyTorch's default Conv/Linear init is kaiming_uniform(a=sqrt(5)): U(+-1/sqrt(fan_in)),
# i.e. VarianceScaling(1/3, fan_in, uniform). ppbnet uses it to start where the original did.
TORCH_DEFAULT_INIT = keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform")


def torch_default_bias_init(fan_in):
  """PyTorch's default Conv/Linear bias: U(+-1/sqrt(fan_in)), fan_in = in x kh x kw.

  A Keras bias initializer sees only the bias' own shape, so fan_in is given here.
  """
  bound = fan_in ** -0.5
  return keras.initializers.RandomUniform(-bound, bound)


def ppbnet(input_size=NET_SIZE, num_outputs=2 * NUM_KEYPOINTS, bias_init="zeros"):
  """The PyTorch original's network, layer for layer (231,080 parameters at 90x90).

  conv3x3/32 SELU -> pool (p1); conv1x1/32 SELU on p1, concatenated with p1 (the
  spatial-fusion branch, 64 channels); conv3x3/64, conv2x2/64, conv3x3/64, each SELU then
  pool; flatten 4x4x64; dense 136 with SELU. All convolutions 'valid'.

  bias_init: "zeros" (Keras' default) or "torch" (PyTorch's default, as the original
  started); kernels start as PyTorch's either way.
  """
  def bias_initializer(fan_in):
    return torch_default_bias_init(fan_in) if bias_init == "torch" else "zeros"

  def conv(x, filters, size, name):
    return layers.Conv2D(filters, size, padding="valid", activation="selu",
                         kernel_initializer=TORCH_DEFAULT_INIT,
                         bias_initializer=bias_initializer(x.shape[-1] * size * size),
                         name=name)(x)

  if bias_init not in ("zeros", "torch"):
    raise ValueError(f"bias_init={bias_init!r}: choose 'zeros' or 'torch'")
  images = keras.Input((input_size, input_size, 1), name="images")
  p1 = layers.MaxPooling2D(2, name="pool1")(conv(images, 32, 3, "conv1"))
  fused = layers.Concatenate(name="fuse")([conv(p1, 32, 1, "conv1x1"), p1])
  x = layers.MaxPooling2D(2, name="pool2")(conv(fused, 64, 3, "conv2"))
  x = layers.MaxPooling2D(2, name="pool3")(conv(x, 64, 2, "conv3"))
  x = layers.MaxPooling2D(2, name="pool4")(conv(x, 64, 3, "conv4"))
  x = layers.Flatten(name="flatten")(x)
  x = layers.Dense(num_outputs, activation="selu", kernel_initializer=TORCH_DEFAULT_INIT,
                   bias_initializer=bias_initializer(x.shape[-1]), name="keypoints")(x)
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


def _make_divisible(channels, divisor=8):
  """MobileNet's channel rounding: a multiple of 8, never below 90 % of the request."""
  rounded = max(divisor, int(channels + divisor / 2) // divisor * divisor)
  return rounded + divisor if rounded < 0.9 * channels else rounded


def _inverted_residual(x, filters, stride, expansion, name):
  """MobileNetV2's block: 1x1 expand, 3x3 depthwise, 1x1 linear project (+ skip)."""
  in_channels = x.shape[-1]
  y = x
  if expansion != 1:
    y = layers.Conv2D(in_channels * expansion, 1, use_bias=False, name=name + "_expand")(y)
    y = layers.BatchNormalization(name=name + "_expand_bn")(y)
    y = layers.ReLU(6.0, name=name + "_expand_relu")(y)
  y = layers.DepthwiseConv2D(3, stride, padding="same", use_bias=False,
                             name=name + "_depthwise")(y)
  y = layers.BatchNormalization(name=name + "_depthwise_bn")(y)
  y = layers.ReLU(6.0, name=name + "_depthwise_relu")(y)
  y = layers.Conv2D(filters, 1, use_bias=False, name=name + "_project")(y)
  y = layers.BatchNormalization(name=name + "_project_bn")(y)
  if stride == 1 and in_channels == filters:
    y = layers.Add(name=name + "_add")([x, y])
  return y


# (expansion, channels, blocks, first stride) per stage, MobileNetV2's table without its
# last 320-channel stage: at 90x90 the map is already 3x3 there.
_MOBILENET_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                     (6, 96, 3, 1), (6, 160, 3, 2))


def mobilenet(input_size=NET_SIZE, num_outputs=2 * NUM_KEYPOINTS, alpha=0.5):
  """A latency-budget regressor: MobileNetV2 blocks and a PFLD-style multi-scale head.

  Depthwise-separable blocks cost few FLOPs (27 MFLOP at alpha 0.5, 90x90) and run fast
  under XNNPACK (the LiteRT export). The head concatenates (the spatial-fusion branch)
  the pooled stride-16 features with the flattened final 3x3 map, so that the linear
  layer sees both where and what.
  """
  channels = lambda n: _make_divisible(n * alpha)
  images = keras.Input((input_size, input_size, 1), name="images")
  x = layers.Conv2D(channels(32), 3, 2, padding="same", use_bias=False, name="stem")(images)
  x = layers.BatchNormalization(name="stem_bn")(x)
  x = layers.ReLU(6.0, name="stem_relu")(x)
  block = 0
  for expansion, filters, blocks, stride in _MOBILENET_STAGES:
    for index in range(blocks):
      x = _inverted_residual(x, channels(filters), stride if index == 0 else 1, expansion,
                             f"block{block}")
      block += 1
      if filters == 96 and index == blocks - 1:
        stride16 = x
  x = layers.Conv2D(channels(256), 1, use_bias=False, name="top")(x)
  x = layers.BatchNormalization(name="top_bn")(x)
  x = layers.ReLU(6.0, name="top_relu")(x)
  fused = layers.Concatenate(name="fuse")([
      layers.GlobalAveragePooling2D(name="pool16")(stride16),
      layers.Flatten(name="flatten")(x)])
  x = layers.Dense(num_outputs, name="keypoints")(fused)
  outputs = layers.Activation("linear", dtype="float32", name="keypoints_norm")(x)
  return keras.Model(images, outputs, name=f"mobilenet_{int(alpha * 100):03d}")


class ChannelPad(layers.Layer):
  """Zeros appended to the channel axis: the shortcut of Face Mesh's and BlazeFace's blocks
  where they widen (the .tflite files' channel PAD)."""

  def __init__(self, extra_channels, **kwargs):
    super().__init__(**kwargs)
    self.extra_channels = extra_channels

  def call(self, inputs):
    # Concatenated zeros, not a Pad op: TF 2.21's oneDNN graph rewrite crashes (a
    # segmentation fault) on a channel Pad feeding the Add after a convolution, in graphs.
    zeros = keras.ops.zeros_like(inputs[..., :1])
    return keras.ops.concatenate([inputs, keras.ops.repeat(zeros, self.extra_channels, axis=-1)],
                                 axis=-1)

  def get_config(self):
    return {**super().get_config(), "extra_channels": self.extra_channels}


def _facemesh_block(x, index, filters, stride, names):
  """Face Mesh V1's residual block: depthwise 3x3, 1x1, add the (pooled, padded) input, PReLU.

  Layer names are the .tflite file's tensor names (`names` counts them), so that the
  pretrained constants bind by name (`core.pretrained`).
  """
  y = layers.DepthwiseConv2D(3, stride, padding="same",
                             name=names("depthwise_conv2d"))(x)
  y = layers.Conv2D(filters, 1, name=names("conv2d"))(y)
  shortcut = x
  if stride == 2:
    # 'same' equals the file's 'valid' on even maps and keeps odd ones (160 px input) aligned
    # with the strided depthwise branch.
    shortcut = layers.MaxPooling2D(2, padding="same", name=f"max_pooling2d_{index}")(x)
  if filters > x.shape[-1]:
    shortcut = ChannelPad(filters - x.shape[-1], name=f"channel_padding_{index}")(shortcut)
  y = layers.Add(name=f"add_{index}")([shortcut, y])
  return layers.PReLU(shared_axes=[1, 2], name=names("p_re_lu"))(y)


class TfliteNames:
  """A ported network's layer names as its .tflite file numbers them: conv2d, conv2d_1, ...

  Layers named so bind to the file's constants by name (`core.pretrained`).
  """

  def __init__(self):
    self.counts = {}

  def __call__(self, kind):
    index = self.counts.get(kind, 0)
    self.counts[kind] = index + 1
    return kind if index == 0 else f"{kind}_{index}"


# Face Mesh V1's landmark branch: (channels, stride) per residual block after the stem.
_FACEMESH_BLOCKS = ((16, 1), (16, 1), (32, 2), (32, 1), (32, 1), (64, 2), (64, 1), (64, 1),
                    (128, 2), (128, 1), (128, 1), (128, 2), (128, 1), (128, 1), (128, 2),
                    (128, 1), (128, 1))


def facemesh(input_size=NET_SIZE, num_outputs=2 * NUM_KEYPOINTS, mesh_size=160):
  """MediaPipe's Face Mesh V1 (Kartynnik et al., arXiv:1907.06724) with a 68-point head.

  The 90x90 gray frame is resized to mesh_size (160: the final map is still 3x3, where
  the mesh's 3x3 'valid' output convolution needs it; 192 is the network's own size),
  runs through Face Mesh's landmark branch with the first kernel taking one gray channel,
  and ends in its 468x3 mesh output. The head concatenates (the spatial-fusion branch)
  that mesh with the pooled stride-32 features and maps both linearly to the 68 points.
  Pretrained weights (Apache-2.0, Google MediaPipe) are copied in by name by
  `core.pretrained.assign_tflite_weights`, with `gray_input_layer="conv2d"`.
  """
  names = TfliteNames()
  images = keras.Input((input_size, input_size, 1), name="images")
  x = layers.Resizing(mesh_size, mesh_size, interpolation="bilinear", name="mesh_input")(images)
  x = layers.Conv2D(16, 3, 2, padding="same", name=names("conv2d"))(x)
  x = layers.PReLU(shared_axes=[1, 2], name=names("p_re_lu"))(x)
  pooled = None
  for index, (filters, stride) in enumerate(_FACEMESH_BLOCKS):
    if index == 15:
      pooled = layers.GlobalAveragePooling2D(name="pool32")(x)
    x = _facemesh_block(x, index, filters, stride, names)
  x = layers.Conv2D(32, 1, name=names("conv2d"))(x)
  x = layers.PReLU(shared_axes=[1, 2], name=names("p_re_lu"))(x)
  x = _facemesh_block(x, len(_FACEMESH_BLOCKS), 32, 1, names)
  mesh = layers.Conv2D(1404, 3, padding="valid", name=names("conv2d"))(x)
  # The mesh is in input pixels (0..mesh_size); scaled to about [0, 1] like the pooled
  # features, so that one Adam step moves the head's outputs by as little as theirs.
  mesh = layers.Rescaling(1.0 / mesh_size, name="mesh_scale")(layers.Flatten(name="mesh")(mesh))
  fused = layers.Concatenate(name="fuse")([mesh, pooled])
  x = layers.Dense(num_outputs, name="keypoints")(fused)
  outputs = layers.Activation("linear", dtype="float32", name="keypoints_norm")(x)
  return keras.Model(images, outputs, name=f"facemesh_{mesh_size}")


def tiny(input_size=NET_SIZE, num_outputs=2 * NUM_KEYPOINTS):
  """A network of a few thousand weights for tests: trains in seconds, in-process."""
  images = keras.Input((input_size, input_size, 1), name="images")
  x = layers.Conv2D(8, 3, strides=2, activation="relu", name="conv1")(images)
  p1 = layers.MaxPooling2D(2, name="pool1")(x)
  fused = layers.Concatenate(name="fuse")([layers.Conv2D(8, 1, name="conv1x1")(p1), p1])
  x = layers.Conv2D(16, 3, strides=2, activation="relu", name="conv2")(fused)
  x = layers.GlobalAveragePooling2D(name="pool")(x)
  x = layers.Dense(num_outputs, name="keypoints")(x)
  outputs = layers.Activation("linear", dtype="float32", name="keypoints_norm")(x)
  return keras.Model(images, outputs, name="tiny")


MODELS = {"ppbnet": ppbnet, "fknet": fknet, "tiny": tiny,
          "mobilenet_050": lambda **kw: mobilenet(alpha=0.5, **kw),
          "mobilenet_075": lambda **kw: mobilenet(alpha=0.75, **kw),
          "facemesh_160": lambda **kw: facemesh(mesh_size=160, **kw),
          "facemesh_192": lambda **kw: facemesh(mesh_size=192, **kw)}


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
