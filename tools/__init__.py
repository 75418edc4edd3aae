"""Command-line tools around fkd_tf: data getter, TFRecord converter, serving client."""
