"""aipw estimator plugins."""
