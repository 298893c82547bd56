"""Trackers: record experiments in an experiment-tracking tool (MLflow)."""
