"""Conventions of the 68-point iBUG 300-W markup shared by every module.

Frames (see DESIGN.md):
  keypoints_px   [N, 68, 2] x, y in continuous pixels of the original image.
  keypoints_net  [N, 68, 2] x, y in continuous pixels of the NET_SIZE x NET_SIZE input.
  keypoints_norm [N, 136]   what the network regresses; a named normalisation of keypoints_net.
"""

import re

import numpy as np

NUM_KEYPOINTS = 68
NET_SIZE = 90

# Outer eye corners: the inter-ocular normaliser of NME_io.
LEFT_EYE_OUTER, RIGHT_EYE_OUTER = 36, 45


def _mirror_permutation():
  pairs = [(i, 16 - i) for i in range(8)]  # jaw
  pairs += [(17 + i, 26 - i) for i in range(5)]  # brows
  pairs += [(31, 35), (32, 34)]  # nostrils
  pairs += [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]  # eyes
  pairs += [(48, 54), (49, 53), (50, 52), (55, 59), (56, 58)]  # outer lip
  pairs += [(60, 64), (61, 63), (65, 67)]  # inner lip
  perm = np.arange(NUM_KEYPOINTS)
  for a, b in pairs:
    perm[a], perm[b] = b, a
  return perm


# After a horizontal flip, point i of the flipped face is point MIRROR_PERMUTATION[i] of the
# original moved to the other side: the left eye's outer corner becomes the right eye's.
MIRROR_PERMUTATION = _mirror_permutation()

# Index ranges of the face regions, for per-region errors.
REGIONS = {
    "jaw": range(0, 17),
    "brows": range(17, 27),
    "nose": range(27, 36),
    "eyes": range(36, 48),
    "mouth": range(48, 68),
}

# keypoints_norm = (keypoints_net - offset) / scale.
#  original: the PyTorch project's (kp - 100) / 50, kept for the faithful configuration.
#  centered: zero at the centre of the net frame, +-1 at its edges.
NORMALISATIONS = {
    "original": (100.0, 50.0),
    "centered": (NET_SIZE / 2.0, NET_SIZE / 2.0),
}

_FRAME_SUFFIX = re.compile(r"_\d+\.[A-Za-z0-9]+$")


def person_id(file_name):
  """'Luis_Fonsi_21.jpg' -> 'Luis_Fonsi': the name without its trailing _NN frame number."""
  base = file_name.rsplit("/", 1)[-1]
  match = _FRAME_SUFFIX.search(base)
  if not match:
    raise ValueError(f"file name {file_name!r} does not end in _NN.<ext>; cannot tell the person")
  return base[:match.start()]
