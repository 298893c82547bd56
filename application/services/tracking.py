"""Recording a finished experiment in the user's tracking tool (parent run, one child per cell)."""

from __future__ import annotations

import json
import re

import structlog

from medaug.application.errors import MedaugError
from medaug.application.ports import ImageStore, TrackedExperiment, Tracker
from medaug.domain import Origin
from medaug.domain.experiment import ExperimentResult

_log = structlog.get_logger(__name__)


def track_experiment(
    tracker: Tracker, result: ExperimentResult, store: ImageStore, run_folder: str, fingerprint: str
) -> None:
    """Hand ``result`` to ``tracker`` with its parameters; a tracking failure is logged, not raised
    (the results are saved before tracking starts)."""
    experiment = TrackedExperiment(
        result=result,
        run_folder=run_folder,
        fingerprint=fingerprint,
        params=experiment_params(result),
        cell_params=cell_params(result, store),
        generator_params=generator_params(result, store),
    )
    try:
        tracker.record(experiment)
    except MedaugError as exc:
        _log.warning("tracking_failed", error=str(exc))


def experiment_params(result: ExperimentResult) -> dict[str, str]:
    """The parent run's parameters: what was compared, on what, with which plan."""
    spec = result.spec
    return {
        "experiment": spec.name,
        "dataset": result.dataset,
        "arms": ",".join(a.name for a in spec.arms),
        "classifiers": ",".join(spec.classifiers),
        "seeds": ",".join(str(s) for s in spec.seeds),
        "baseline": spec.baseline or "",
        "policy": spec.policy.model_dump_json(),
        "plan_seed": str(spec.plan_seed),
        "val_fraction": str(spec.val_fraction),
        "test_images": str(result.test_images),
    }


def cell_params(result: ExperimentResult, store: ImageStore) -> dict[str, dict[str, str]]:
    """Each cell's parameters by slug: its key's fields, its arm's generators, options and the
    weights hashes its synthetic images were made with."""
    arms = {arm.name: arm for arm in result.spec.arms}
    hashes = {name: _weights_hashes(store, name) for name, arm in arms.items() if arm.augments}
    out: dict[str, dict[str, str]] = {}
    for cell in result.cells:
        arm = arms[cell.key.arm]
        params = {k: str(v) for k, v in cell.key.model_dump().items() if v is not None}
        params |= {
            "generators": ",".join(arm.generators) or "none",
            "generator_options": json.dumps(arm.options, sort_keys=True, default=str),
            "train_images": str(cell.train_images),
        }
        if hashes.get(arm.name):
            params["weights_sha256"] = ",".join(hashes[arm.name])
        out[cell.key.slug] = params
    return out


_GENERATOR_FIELDS = ("checkpoint", "checkpoint_step", "training_seed", "weights_sha256")


def generator_params(result: ExperimentResult, store: ImageStore) -> dict[str, dict[str, str]]:
    """Each trained generator the experiment's synthetic images came from, by
    ``<augmentation set>/<generator>``: what its images' provenance records of it (checkpoint,
    step, training seed, weights hash) and how many images it made. Only generators with weights
    (a ``weights_sha256`` in their images' parameters) are listed."""
    arms = [arm.name for arm in result.spec.arms if arm.augments]
    out: dict[str, dict[str, str]] = {}
    for record in store.list(origin=Origin.SYNTHETIC):
        parameters = record.provenance.parameters
        augmentation = record.augmentation or ""
        used = any(re.fullmatch(rf"{re.escape(arm)}(-f\d+r\d+)?", augmentation) for arm in arms)  # a fold's set
        if not used or "weights_sha256" not in parameters:
            continue
        name = f"{augmentation}/{record.provenance.generator}"
        entry = out.setdefault(name, {"augmentation": augmentation, "generator": record.provenance.generator,
                                      **{k: str(parameters[k]) for k in _GENERATOR_FIELDS if k in parameters},
                                      "images": "0"})  # fmt: skip
        entry["images"] = str(int(entry["images"]) + 1)
    return out


def _weights_hashes(store: ImageStore, augmentation: str) -> list[str]:
    found = {
        str(record.provenance.parameters["weights_sha256"])
        for record in store.list(origin=Origin.SYNTHETIC, augmentation=augmentation)
        if "weights_sha256" in record.provenance.parameters
    }
    return sorted(found)
