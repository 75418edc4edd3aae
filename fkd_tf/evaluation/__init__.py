"""Judging a trained model: reports in original pixels, inspection, speed."""
