"""Files on any file system TensorFlow serves: atomic writes, hashes, progress bars."""
