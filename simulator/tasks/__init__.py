"""Tasks (compare, validate, calibrate, sweep, plan, advise, summarize): each a `run(cfg: RunConfig, out)` that
prints, plots and writes what the library modules below compute. The CLI loads them by name."""
