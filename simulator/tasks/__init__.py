"""Tasks on top of the physics: compare (and, later, validate, calibrate, sweep, plan)."""
