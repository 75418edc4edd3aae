"""Using a trained model: the Python API, face detection, prediction at scale, drawing."""
