"""Record-keeping beside the course, run as `python -m tools.<name>` from the repository root: benchmark,
seed and step sweeps, README generation, model selection."""
