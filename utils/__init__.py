"""Shared code for the MNIST < 8k-parameter course: data, models, training, plots."""
