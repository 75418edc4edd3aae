"""fkd_tf: 68-point facial keypoints (iBUG 300-W order) in TensorFlow/Keras."""

__version__ = "0.1.0"
