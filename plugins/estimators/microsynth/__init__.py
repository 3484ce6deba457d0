"""microsynth estimator plugins."""
