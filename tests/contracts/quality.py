"""The QualityAnalyzer and SyntheticScreen contracts: every quality adapter must pass these.

Subclass ``QualityAnalyzerContract`` and provide an ``analyzer`` fixture (tiny and fast), or
``SyntheticScreenContract`` and provide a ``screen`` fixture judging images of ``quality_store``.
``quality_store`` holds fundus-like real training and test images and an augmentation set
``mixed`` of copies of training images and new images (see ``tests.quality_images``).
"""

from __future__ import annotations

import json

import pytest

from medaug.adapters.png import encode_png
from medaug.adapters.stores.local import LocalImageStore
from medaug.application.errors import ConfigError
from medaug.application.ports import (
    GenerationRequest,
    GenerationResult,
    NullProgress,
    QualityAnalyzer,
    SyntheticScreen,
)
from medaug.application.services.quality import quality_request
from medaug.domain import Grade
from tests.quality_images import fill_real, fundus_like, noise_image, synthetic


class QualityStore:
    """Provides ``quality_store`` to the contracts (and to their subclasses' fixtures)."""

    @pytest.fixture(scope="class")
    def quality_store(self, tmp_path_factory: pytest.TempPathFactory) -> LocalImageStore:
        store = LocalImageStore(tmp_path_factory.mktemp("contract") / "store")
        fill_real(store, train_per_grade=6, test_per_grade=3)
        for grade in (1, 3):
            for index in range(3):
                copy = fundus_like(100 * grade + index, grade)  # = real training image train-g<grade>-<index>
                store.put(synthetic(f"mixed-copy-g{grade}-{index}", grade, "mixed"), encode_png(copy))
                new = fundus_like(9000 + 10 * grade + index, grade)
                store.put(synthetic(f"mixed-new-g{grade}-{index}", grade, "mixed"), encode_png(new))
        return store


class QualityAnalyzerContract(QualityStore):
    """What every QualityAnalyzer does (see its docstring in ``application.ports``)."""

    @pytest.fixture
    def analyzer(self) -> QualityAnalyzer:
        raise NotImplementedError

    def test_is_a_quality_analyzer(self, analyzer: QualityAnalyzer) -> None:
        assert isinstance(analyzer, QualityAnalyzer) and analyzer.feature_space

    def test_report_covers_the_synthetic_grades_and_every_image(self, analyzer, quality_store) -> None:  # type: ignore[no-untyped-def]
        request = quality_request(quality_store, "mixed")
        report = analyzer.assess(request, quality_store, progress=NullProgress())
        assert report.augmentation == "mixed" and report.grades() == [Grade(1), Grade(3)]
        assert set(report.reference_per_grade) == {Grade(1), Grade(3)}
        assert report.overall.n_images == 12 and report.reference.n_images == len(request.held_out)
        nearest = report.memorisation.nearest
        assert sorted(r.image_id for r in nearest) == sorted(r.id for r in request.synthetic)
        assert [r.flagged for r in nearest] == sorted((r.flagged for r in nearest), reverse=True)
        assert all(r.pixel_id in {x.id for x in request.real} for r in nearest)
        assert {r.image_id for r in nearest if r.flagged} == {r.id for r in request.synthetic if "copy" in r.id}
        json.dumps(report.model_dump(mode="json"))

    def test_is_deterministic(self, analyzer, quality_store) -> None:  # type: ignore[no-untyped-def]
        request = quality_request(quality_store, "mixed")
        first = analyzer.assess(request, quality_store, progress=NullProgress())
        second = analyzer.assess(request, quality_store, progress=NullProgress())
        assert first.model_copy(update={"seconds": 0}) == second.model_copy(update={"seconds": 0})

    def test_needs_real_and_held_out_images(self, analyzer, quality_store) -> None:  # type: ignore[no-untyped-def]
        request = quality_request(quality_store, "mixed")
        for empty in ({"real": ()}, {"held_out": ()}):
            with pytest.raises(ConfigError):
                analyzer.assess(request.model_copy(update=empty), quality_store, progress=NullProgress())


class SyntheticScreenContract(QualityStore):
    """What every SyntheticScreen does (see its docstring in ``application.ports``)."""

    @pytest.fixture
    def screen(self) -> SyntheticScreen:
        raise NotImplementedError

    @staticmethod
    def batch() -> tuple[list[GenerationRequest], list[GenerationResult]]:
        images = [(2, fundus_like(77_000, 2)), (0, noise_image(3)), (4, fundus_like(404, 4))]
        requests = [GenerationRequest(image_id=f"s{i}", grade=Grade(g), seed=i, size=32) for i, (g, _) in enumerate(images)]
        results = [GenerationResult(image_id=f"s{i}", data=encode_png(p)) for i, (_, p) in enumerate(images)]
        return requests, results

    def test_is_a_synthetic_screen(self, screen: SyntheticScreen) -> None:
        assert isinstance(screen, SyntheticScreen) and screen.name

    def test_one_deterministic_verdict_per_result(self, screen: SyntheticScreen) -> None:
        requests, results = self.batch()
        verdicts = screen.screen(requests, results)
        assert len(verdicts) == len(results)
        assert all(v.accepted == (v.reason is None) for v in verdicts)
        json.dumps([v.scores for v in verdicts])
        assert screen.screen(requests, results) == verdicts
        assert screen.screen([], []) == []

    def test_writes_nothing(self, screen: SyntheticScreen, quality_store: LocalImageStore) -> None:
        before = [r.id for r in quality_store.list()]
        screen.screen(*self.batch())
        assert [r.id for r in quality_store.list()] == before
