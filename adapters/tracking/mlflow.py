"""The MLflow tracker: the experiment as a parent run, each cell as a child run.

MLflow is an optional extra (``pip install -e ".[mlflow]"``), imported only when ``record``
runs; nothing connects before. A parent run is found again by a tag derived from the run
folder and the experiment fingerprint, so a resumed experiment adds only the cells missing.
"""

from __future__ import annotations

import hashlib
import math
import time
from pathlib import Path
from typing import Any

from medaug.application.errors import ConfigError, TrackingError
from medaug.application.ports import TrackedExperiment
from medaug.domain.experiment import CellResult

SCORES = ("accuracy", "balanced_accuracy", "macro_f1", "quadratic_kappa", "loss")
RUN_KEY = "medaug.run_key"
CELL = "medaug.cell"
GENERATOR = "medaug.generator"
PARENT = "mlflow.parentRunId"


def tracking_uri(uri: str) -> tuple[str, str | None]:
    """``uri`` as MLflow takes it, and where new experiments keep their artefacts.

    A plain folder holds an SQLite database (``mlflow.db``: MLflow's own file format is in
    maintenance mode) and an ``artifacts`` folder; URIs (servers, databases) pass through.
    """
    if "://" in uri or uri.startswith("databricks"):
        return uri, None
    folder = Path(uri).expanduser().resolve()
    return f"sqlite:///{folder / 'mlflow.db'}", (folder / "artifacts").as_uri()


class MlflowTracker:
    """Records experiments in the MLflow tracking server or folder at ``uri``.

    Args:
        uri: a folder (``mlruns``: ``mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db``),
            a database URI or a server (``http://host:5000``).
        experiment: the MLflow experiment the runs go to (created when missing).
    """

    def __init__(self, uri: str, experiment: str) -> None:
        self._folder = None if "://" in uri else Path(uri).expanduser()
        self._uri, self._artifacts = tracking_uri(uri)
        self._experiment = experiment

    def record(self, experiment: TrackedExperiment) -> None:
        try:
            from mlflow.exceptions import MlflowException
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise ConfigError('tracking.mlflow_uri needs MLflow: pip install -e ".[mlflow]"') from None
        try:
            if self._folder is not None:
                self._folder.mkdir(parents=True, exist_ok=True)
            self._record(MlflowClient(tracking_uri=self._uri), experiment)
        except (MlflowException, OSError) as exc:
            raise TrackingError(f"tracking.mlflow_uri {self._uri}: {str(exc).splitlines()[0]}") from None

    def _record(self, client: Any, tracked: TrackedExperiment) -> None:
        experiment_id = self._experiment_id(client)
        run_key = hashlib.sha256(f"{tracked.run_folder}\n{tracked.fingerprint}".encode()).hexdigest()[:20]
        parent = self._parent(client, experiment_id, run_key, tracked)
        logged = self._finished_children(client, experiment_id, parent)
        for cell in tracked.result.cells:
            if cell.key.slug not in logged:
                self._log_cell(client, experiment_id, parent, cell, tracked.cell_params.get(cell.key.slug, {}))
        for name, params in tracked.generator_params.items():
            if f"{GENERATOR}:{name}" not in logged:
                tags = {PARENT: parent, GENERATOR: name}
                run = client.create_run(experiment_id, run_name=f"generator {name}", tags=tags)
                _log_params(client, run.info.run_id, params)
                client.set_terminated(run.info.run_id)
        self._log_summaries(client, parent, tracked)
        client.set_terminated(parent)

    def _experiment_id(self, client: Any) -> str:
        found = client.get_experiment_by_name(self._experiment)
        if found is not None:
            return found.experiment_id
        return client.create_experiment(self._experiment, artifact_location=self._artifacts)

    def _parent(self, client: Any, experiment_id: str, run_key: str, tracked: TrackedExperiment) -> str:
        runs = client.search_runs([experiment_id], filter_string=f"tags.`{RUN_KEY}` = '{run_key}'", max_results=1)
        if runs:
            return runs[0].info.run_id
        tags = {RUN_KEY: run_key, "medaug.run_folder": tracked.run_folder, "medaug.fingerprint": tracked.fingerprint}
        run = client.create_run(experiment_id, run_name=tracked.result.spec.name, tags=tags)
        _log_params(client, run.info.run_id, tracked.params)
        return run.info.run_id

    def _finished_children(self, client: Any, experiment_id: str, parent: str) -> set[str]:
        """Slugs of cells (and ``medaug.generator:<name>`` of generators) already logged in full;
        a half-logged child (killed) is deleted."""
        done = set()
        for run in client.search_runs([experiment_id], filter_string=f"tags.`{PARENT}` = '{parent}'"):
            if run.info.status == "FINISHED" and CELL in run.data.tags:
                done.add(run.data.tags[CELL])
            elif run.info.status == "FINISHED" and GENERATOR in run.data.tags:
                done.add(f"{GENERATOR}:{run.data.tags[GENERATOR]}")
            else:
                client.delete_run(run.info.run_id)
        return done

    def _log_cell(self, client: Any, experiment_id: str, parent: str, cell: CellResult, params: Any) -> None:
        from mlflow.entities import Metric

        run = client.create_run(experiment_id, run_name=cell.key.slug, tags={PARENT: parent, CELL: cell.key.slug})
        run_id, now = run.info.run_id, int(time.time() * 1000)
        metrics = [Metric(name, getattr(cell.metrics, name), now, 0) for name in SCORES]
        metrics += [Metric("train_seconds", cell.seconds, now, 0)]
        for record in cell.history:
            for name in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
                value = getattr(record, name)
                if value is not None:
                    metrics.append(Metric(f"epoch_{name}", value, now, record.epoch))
        _log_params(client, run_id, params)
        client.log_batch(run_id, metrics=[m for m in metrics if math.isfinite(m.value)])
        confusion = {"grades": list(range(len(cell.metrics.confusion))), "confusion": cell.metrics.confusion}
        client.log_dict(run_id, confusion, "confusion_matrix.json")
        client.log_dict(run_id, cell.predictions.model_dump(mode="json"), "predictions.json")
        client.set_terminated(run_id)

    def _log_summaries(self, client: Any, parent: str, tracked: TrackedExperiment) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [
            Metric(f"{arm}.{classifier}.{name}_mean", summary.mean, now, 0)
            for arm, per_classifier in tracked.result.summaries.items()
            for classifier, summaries in per_classifier.items()
            for name, summary in summaries.items()
            if math.isfinite(summary.mean)
        ]
        for verdict in tracked.result.verdicts():  # the protocol's primary test, as the report reads it
            name = f"{verdict.arm}.{verdict.classifier}.vs_{verdict.baseline}"
            figures = {"accuracy_difference": verdict.difference, "p_value": verdict.p_value,
                       "significant": float(verdict.significant)}  # fmt: skip
            metrics += [Metric(f"{name}.{key}", v, now, 0) for key, v in figures.items() if math.isfinite(v)]
        if metrics:
            client.log_batch(parent, metrics=metrics)


def _log_params(client: Any, run_id: str, params: Any) -> None:
    from mlflow.entities import Param

    if params:
        client.log_batch(run_id, params=[Param(key, str(value)[:6000]) for key, value in params.items()])
