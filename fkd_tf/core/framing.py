"""Pure batched functions from network outputs to keypoints in image pixels.

Training's validation, evaluation, serving and predict all call these, so the
"original image -> net frame" map and its inverse exist once.
"""

import tensorflow as tf

from fkd_tf import augment, geometry
from fkd_tf.keypoints import MIRROR_PERMUTATION, NET_SIZE, NORMALISATIONS, NUM_KEYPOINTS


def normalise(keypoints_net, normalisation):
  """[N, 68, 2] net pixels -> [N, 136] what the network regresses."""
  offset, scale = NORMALISATIONS[normalisation]
  return tf.reshape((keypoints_net - offset) / scale, [-1, 2 * NUM_KEYPOINTS])


def denormalise(keypoints_norm, normalisation):
  """[N, 136] network output -> [N, 68, 2] net pixels."""
  offset, scale = NORMALISATIONS[normalisation]
  keypoints_norm = tf.cast(keypoints_norm, tf.float32)
  return tf.reshape(keypoints_norm * scale + offset, [-1, NUM_KEYPOINTS, 2])


def keypoints_net_of(network, images_net, normalisation, flip_average=False):
  """The network's keypoints in the net frame [N, 68, 2]; with flip_average, the mean of
  the prediction and the un-mirrored prediction on the mirrored images."""
  keypoints_net = denormalise(network(images_net, training=False), normalisation)
  if not flip_average:
    return keypoints_net
  mirrored = denormalise(network(tf.reverse(images_net, axis=[2]), training=False),
                         normalisation)
  unmirrored = tf.gather(mirrored, MIRROR_PERMUTATION, axis=1) * [-1.0, 1.0] + [NET_SIZE, 0.0]
  return (keypoints_net + unmirrored) / 2.0


def keypoints_px_from_net(keypoints_net, net_from_image):
  """[N, 68, 2] net-frame points -> pixels of the original images (the inverse frame)."""
  return geometry.transform_points(tf.linalg.inv(net_from_image), keypoints_net)


def keypoints_px_from_outputs(keypoints_norm, net_from_image, normalisation):
  """Network outputs [N, 136] -> [N, 68, 2] pixels of the original images."""
  return keypoints_px_from_net(denormalise(keypoints_norm, normalisation), net_from_image)


def predict_keypoints_px(network, images, regions, rescale_size, normalisation):
  """Evaluation-frame prediction for a batch of canvases.

  Args:
    network: Keras model, [N, 90, 90, 1] -> [N, 136].
    images: [N, H, W, 1] uint8 or float canvas; regions: [N, 4] (x0, y0, x1, y1).
  Returns:
    (keypoints_px [N, 68, 2], keypoints_norm [N, 136], net_from_image [N, 3, 3]).
  """
  images_net, net_from_image = augment.frame_batch(images, regions, rescale_size)
  keypoints_norm = network(images_net, training=False)
  keypoints_px = keypoints_px_from_outputs(keypoints_norm, net_from_image, normalisation)
  return keypoints_px, keypoints_norm, net_from_image
