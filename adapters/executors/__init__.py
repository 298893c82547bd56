"""Executors: run an experiment's tasks in this process (``local``) or on a Ray cluster (``ray``)."""
