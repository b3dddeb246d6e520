"""Calibration: fit the named efficiency knobs (per hardware family) and acceptance scales (per model)."""
