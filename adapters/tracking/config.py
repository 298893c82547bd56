"""Configuration of experiment tracking (pure pydantic)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class TrackingConfig(BaseModel):
    """Recording experiments in MLflow (``pip install -e ".[mlflow]"``); off by default.

    Attributes:
        mlflow_uri: an MLflow tracking URI: a local folder (``mlruns`` or ``file:///...``) or a
            server (``http://mlflow:5000``); None turns tracking off.
        experiment: the MLflow experiment the runs go to (None: the experiment file's name).
    """

    model_config = ConfigDict(extra="forbid")

    mlflow_uri: str | None = None
    experiment: str | None = None
