"""MicroSynth: user-level synthetic control by exact covariate balancing (Robbins & Davenport 2021)."""
