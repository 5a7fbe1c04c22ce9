"""Record-keeping beside the course: benchmark, seed sweep, README generation, model selection."""
