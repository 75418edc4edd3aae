"""The settings of the training-time changes and of the framing, without TensorFlow.

`core.augment` applies them; `cli.train_flags` turns each field into a flag (its help in
the field's metadata), which is why this module imports nothing heavier than numpy.
"""

import dataclasses

from fkd_tf.core.keypoints import NET_SIZE


def _setting(default, help_text):
  """A field with its flag's help: `fkd_tf.train` defines its flags from these."""
  return dataclasses.field(default=default, metadata={"help": help_text})


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
  """Ranges of the random changes; the defaults change nothing but the original's crop.

  Each field's metadata["help"] is its flag's help (`--<name>`, no prefix).
  """
  rescale_size: float = _setting(100.0, "Shorter side of the image after rescaling, before "
                                 "the 90x90 crop (the original: 100).")
  random_crop: bool = _setting(True, "Place the training crop uniformly along the slack "
                               "(the original's RandomCrop); evaluation always centres it.")
  # Whole-pixel rescaled sizes and crop offsets, as the original's numpy code had them
  # (`geometry.frame_matrix`); evaluation and serving frame so too.
  original_rounding: bool = _setting(False, "Frame in whole pixels as the original's numpy "
                                     "code did: int() of each rescaled side, integer crop "
                                     "offsets (training: 0 .. slack-1, evaluation and "
                                     "serving: slack // 2).")
  max_rotation_deg: float = _setting(0.0, "Random rotation range, degrees, +-.")
  min_scale: float = _setting(1.0, "Smallest random zoom of the net frame (1: none).")
  max_scale: float = _setting(1.0, "Largest random zoom of the net frame (1: none).")
  max_shift: float = _setting(0.0, "Random translation range, net pixels, +- on each axis.")
  flip_prob: float = _setting(0.0, "Probability of a horizontal flip (with the 68-point "
                              "left/right swap).")
  brightness: float = _setting(0.0, "Random brightness change range, +- (images in "
                               "[0, 1]).")
  contrast: float = _setting(0.0, "Random contrast factor range, 1 +- this.")
  gamma: float = _setting(0.0, "Random gamma exponent range, exp(+- this).")
  blur_prob: float = _setting(0.0, "Probability of a Gaussian blur.")
  blur_sigma: float = _setting(1.0, "Sigma of that blur, net pixels.")
  erase_prob: float = _setting(0.0, "Probability of erasing one random rectangle.")
  erase_max_fraction: float = _setting(0.4, "Largest erased side, as a fraction of the "
                                       "90 px frame.")
  # The refining stage of a cascade is fed at serving time by the coarse stage's keypoints.
  region: str = _setting("image", "What is framed: 'image' (the whole image, the original) "
                         "or 'keypoints' (a square around the keypoints: a cascade's "
                         "refining stage).")
  region_margin: float = _setting(1.25, "Side of the 'keypoints' square over the keypoint "
                                  "box's larger side.")

  def __post_init__(self):
    problems = self.problems()
    if problems:
      raise ValueError("bad augmentation settings: " + "; ".join(problems))

  def problems(self):
    """Each out-of-range setting, named; empty when all are sound."""
    problems = []
    if self.rescale_size < NET_SIZE:
      problems.append(f"rescale_size={self.rescale_size} must be >= {NET_SIZE}")
    if not 0 < self.min_scale <= self.max_scale:
      problems.append(f"need 0 < min_scale <= max_scale, got {self.min_scale}, {self.max_scale}")
    for name in ("flip_prob", "blur_prob", "erase_prob", "erase_max_fraction"):
      if not 0.0 <= getattr(self, name) <= 1.0:
        problems.append(f"{name}={getattr(self, name)} must lie in [0, 1]")
    for name in ("max_rotation_deg", "max_shift", "brightness", "contrast", "gamma"):
      if getattr(self, name) < 0:
        problems.append(f"{name}={getattr(self, name)} must be >= 0")
    if self.blur_sigma <= 0:
      problems.append(f"blur_sigma={self.blur_sigma} must be > 0")
    if self.region not in ("image", "keypoints"):
      problems.append(f"region={self.region!r} must be 'image' or 'keypoints'")
    if self.region_margin < 1.0:
      problems.append(f"region_margin={self.region_margin} must be >= 1")
    return problems
