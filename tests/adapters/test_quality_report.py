"""The experiment report's quality section, and how the experiment job adds quality to its result."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from medaug.adapters.png import encode_png
from medaug.adapters.quality.report_section import quality_sections
from medaug.adapters.reporting.report import HtmlMarkdownReportWriter
from medaug.adapters.stores.local import LocalImageStore
from medaug.application.ports import ImageStore, NullProgress
from medaug.application.services.experiment import saved_quality, with_quality
from medaug.application.services.experiment_job import DatasetStep, ExperimentJob, QualityStep
from medaug.composition import factories
from medaug.composition.settings import load_settings
from medaug.domain import Grade, PlanPolicy, Split
from medaug.domain.experiment import Arm, ExperimentResult, ExperimentSpec
from medaug.domain.quality import (
    DistributionScores,
    GradeFidelity,
    LabelFidelity,
    Memorisation,
    NearestReal,
    QualityReport,
    SimilaritySummary,
)
from tests.conftest import real_record
from tests.fakes import MemoryRuns
from tests.quality_images import fundus_like, synthetic


def _fidelity(agreement: float) -> LabelFidelity:
    grade = GradeFidelity(n=2, agreement=agreement, confidence=agreement / 2)
    return LabelFidelity(overall=grade, per_grade={Grade(2): grade}, tstr_accuracy=0.4, tstr_kappa=0.2)


def _report(arm: str) -> QualityReport:
    scores = DistributionScores(n_real=3, n_images=2, fid=12.5, kid_mean=0.01, kid_std=0.002, kid_subset_size=2,
                                precision=0.5, recall=0.25, density=0.8, coverage=0.5, diversity=0.3)
    summary = SimilaritySummary(n=2, flagged=1, correlation=(0.7, 0.99, 1.0), ssim=(0.8, 0.99, 1.0), cosine=(0.5, 0.9, 0.9))
    nearest = (
        NearestReal(image_id=f"{arm}-copy", grade=Grade(2), pixel_id="r0", pixel_transform="hflip", pixel_correlation=1.0,
                    ssim=1.0, feature_id="r0", feature_cosine=0.9, flagged=True),
        NearestReal(image_id=f"{arm}-new", grade=Grade(2), pixel_id="r1", pixel_correlation=0.4, ssim=0.7,
                    feature_id="r1", feature_cosine=0.5),
    )  # fmt: skip
    return QualityReport(
        augmentation=arm, generators=("test",), feature_space="efficientnet-lite0", classifier_accuracy=0.6,
        overall=scores, per_grade={Grade(2): scores}, reference=scores, reference_per_grade={Grade(2): scores},
        fidelity=_fidelity(0.5), reference_fidelity=_fidelity(0.6),
        memorisation=Memorisation(summary=summary, reference=summary, nearest=nearest, reference_nearest=nearest[1:]),
    )  # fmt: skip


def _result(quality: dict[str, QualityReport]) -> ExperimentResult:
    spec = ExperimentSpec(arms=(Arm(name="none"), Arm(name="copies", generators=("test",))), classifiers=("cnn",),
                          seeds=(0,), policy=PlanPolicy.balance_largest())
    return ExperimentResult(spec=spec, dataset="tiny", cells=(), summaries={}, comparisons=(), test_images=3,
                            quality=quality)


@pytest.fixture
def store(tmp_path: Path) -> LocalImageStore:
    images = LocalImageStore(tmp_path / "store")
    for index in range(2):
        images.put(real_record(f"r{index}", 2), encode_png(fundus_like(index, 2)))
    images.put(synthetic("copies-copy", 2, "copies"), encode_png(fundus_like(0, 2)[:, ::-1].copy()))
    images.put(synthetic("copies-new", 2, "copies"), encode_png(fundus_like(9, 2)))
    return images


def test_the_report_has_a_quality_section_per_arm(store: LocalImageStore, tmp_path: Path) -> None:
    writer = HtmlMarkdownReportWriter(seed=0, extra_sections=(quality_sections,))
    written = writer.write(_result({"copies": _report("copies")}), str(tmp_path / "run"), store)
    markdown = (tmp_path / "run" / "report.md").read_text()
    assert "## Quality of the synthetic images" in markdown and "### Arm copies" in markdown
    assert "| held-out real |" in markdown and "| copies |" in markdown and "1 of 2 synthetic images are near-copies" in markdown
    for figure in ("quality-manifold.png", "quality-similarity-copies.png", "quality-fidelity-copies.png",
                   "quality-worst-copies.png"):
        assert str(tmp_path / "run" / "figures" / figure) in written
    assert 'id="quality"' in (tmp_path / "run" / "report.html").read_text()


def test_without_quality_the_report_has_no_such_section(store: LocalImageStore, tmp_path: Path) -> None:
    HtmlMarkdownReportWriter(seed=0, extra_sections=(quality_sections,)).write(_result({}), str(tmp_path / "run"), store)
    assert "Quality of the synthetic images" not in (tmp_path / "run" / "report.md").read_text()


def test_results_without_quality_still_load() -> None:
    payload = _result({}).model_dump(mode="json")
    del payload["quality"]
    assert ExperimentResult.model_validate(payload).quality == {}


class _Analyzer:
    feature_space = "efficientnet-lite0"

    def __init__(self) -> None:
        self.assessed: list[str] = []

    def assess(self, request, store, *, progress):  # type: ignore[no-untyped-def]
        self.assessed.append(request.augmentation)
        return _report(request.augmentation)


def _job(store: LocalImageStore, runs: MemoryRuns, analyzer: Callable[[ImageStore], object] | None) -> ExperimentJob:
    result = _result({})
    return ExperimentJob(
        spec=result.spec, dataset=DatasetStep(store=store, description="test", seed=0), runs=runs, trainers={},
        generators=_unused, generator_trainers=_unused, evaluator=None, report_writer=None,  # type: ignore[arg-type]
        image_size=lambda store: 64,
        quality=None if analyzer is None else QualityStep(analyzer=analyzer, is_current=lambda report: True),  # type: ignore[arg-type]
    )  # fmt: skip


def _unused(*args: object) -> None:
    raise AssertionError("not used by the quality step")


def test_the_experiment_job_adds_quality_of_augmenting_arms_and_reuses_earlier_reports(store: LocalImageStore) -> None:
    store.put(real_record("t0", 2, split=Split.TEST), encode_png(fundus_like(50, 2)))
    analyzer, runs = _Analyzer(), MemoryRuns()
    job = _job(store, runs, lambda s: analyzer)
    result = with_quality(_result({}), job, NullProgress())
    assert list(result.quality) == ["copies"] and analyzer.assessed == ["copies"]
    assert runs.result is not None and list(runs.result.quality) == ["copies"]
    again = with_quality(_result({}), job, NullProgress(), earlier=saved_quality(runs))
    assert analyzer.assessed == ["copies"] and again.quality == result.quality
    assert with_quality(_result({}), _job(store, MemoryRuns(), None), NullProgress()).quality == {}


def test_a_failed_assessment_leaves_the_result_without_quality(store: LocalImageStore) -> None:
    # No test images in this store: the assessment fails with a one-line error, which is logged.
    job = _job(store, MemoryRuns(), lambda s: factories.build_quality_analyzer(load_settings(), s))
    assert with_quality(_result({}), job, NullProgress()).quality == {}


def test_the_composition_root_hands_the_quality_section_to_the_report(store: LocalImageStore, tmp_path: Path) -> None:
    factories.build_report_writer(0).write(_result({"copies": _report("copies")}), str(tmp_path / "run"), store)
    assert "## Quality of the synthetic images" in (tmp_path / "run" / "report.md").read_text()
