"""selection estimator plugins."""
