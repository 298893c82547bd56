"""The HTML + Markdown report writer, on a hand-built experiment result and a tiny local store."""

from __future__ import annotations

import math
import re
import statistics
from pathlib import Path

import pytest

from medaug.adapters.reporting.answer import answer_sentence
from medaug.adapters.reporting.formatting import one_image_sentence, redact
from medaug.adapters.reporting.report import HtmlMarkdownReportWriter
from medaug.adapters.stores.local import LocalImageStore
from medaug.application.errors import MedaugError
from medaug.application.ports import ReportWriter
from medaug.domain import Grade, PlanPolicy
from medaug.domain.experiment import (
    THESIS_REFERENCES,
    Arm,
    CellKey,
    CellResult,
    Comparison,
    EpochRecord,
    ExperimentResult,
    ExperimentSpec,
    Metrics,
    Predictions,
    Summary,
)
from medaug.domain.quality import ScreenAcceptance
from tests.conftest import png_bytes, real_record, synthetic_record

LABELS = (0, 0, 1, 2, 3, 4)
PREDICTED = {
    ("classic", 0): (0, 0, 0, 2, 2, 4),
    ("classic", 1): (0, 0, 0, 0, 3, 4),
    ("diffusion", 0): (0, 0, 1, 2, 3, 4),
    ("diffusion", 1): (0, 0, 0, 2, 2, 4),
}
SECRET = "sk-test-1234567890"


def _metrics(predicted: tuple[int, ...], loss: float) -> Metrics:
    confusion = [[0] * 5 for _ in range(5)]
    for y, p in zip(LABELS, predicted, strict=True):
        confusion[y][p] += 1
    accuracy = sum(p == y for p, y in zip(predicted, LABELS, strict=True)) / len(LABELS)
    recall = {g: (confusion[g][g] / sum(confusion[g]) if sum(confusion[g]) else 0.0) for g in Grade}
    column = [sum(confusion[i][g] for i in range(5)) for g in range(5)]
    precision = {g: (confusion[g][g] / column[g] if column[g] else 0.0) for g in Grade}
    return Metrics(
        n=len(LABELS), accuracy=accuracy, balanced_accuracy=accuracy * 0.9, macro_f1=accuracy * 0.8,
        quadratic_kappa=accuracy - 0.3, loss=loss, precision=precision, recall=recall, confusion=confusion,
    )  # fmt: skip


def _cell(arm: str, classifier: str, seed: int, *, epochs: int = 3, loss: float = 1.2) -> CellResult:
    predicted = PREDICTED[(arm if arm in ("classic", "diffusion") else "classic", seed % 2)]
    history = tuple(
        EpochRecord(
            epoch=e + 1, train_loss=1.6 - 0.2 * e, train_accuracy=0.3 + 0.1 * e, val_loss=1.7 - 0.1 * e,
            val_accuracy=0.25 + 0.05 * e,
        )
        for e in range(epochs)
    )
    return CellResult(
        key=CellKey(arm=arm, classifier=classifier, seed=seed),
        metrics=_metrics(predicted, loss),
        predictions=Predictions(
            image_ids=tuple(f"t{i}" for i in range(len(LABELS))),
            labels=LABELS,
            predicted=predicted,
            probabilities=tuple(tuple(0.2 for _ in range(5)) for _ in LABELS),
        ),
        history=history,
        best_epoch=epochs,
        train_images=20,
        seconds=12.5,
    )


def _summaries(cells: list[CellResult]) -> dict[str, dict[str, dict[str, Summary]]]:
    out: dict[str, dict[str, dict[str, Summary]]] = {}
    for cell in cells:
        out.setdefault(cell.key.arm, {}).setdefault(cell.key.classifier, {})
    for arm, by_classifier in out.items():
        for classifier in by_classifier:
            group = [c for c in cells if c.key.arm == arm and c.key.classifier == classifier]
            for metric in ("accuracy", "balanced_accuracy", "macro_f1", "quadratic_kappa", "loss"):
                values = [getattr(c.metrics, metric) for c in group]
                mean = statistics.fmean(values)
                std = statistics.stdev(values) if len(values) > 1 else 0.0
                by_classifier[classifier][metric] = Summary(
                    n=len(values), mean=mean, std=std, ci_low=mean - 2 * std, ci_high=mean + 2 * std
                )
    return out


def _result(
    cells: list[CellResult],
    arms: tuple[Arm, ...],
    classifiers: tuple[str, ...],
    seeds: tuple[int, ...],
    comparisons: tuple[Comparison, ...] = (),
    **extra: object,
) -> ExperimentResult:
    spec = ExperimentSpec(
        name="tiny", arms=arms, classifiers=classifiers, seeds=seeds, policy=PlanPolicy.balance_total(20),
        baseline="classic" if any(arm.name == "classic" for arm in arms) else None,
    )
    return ExperimentResult(
        spec=spec, dataset="idrid", cells=tuple(cells), summaries=_summaries(cells), comparisons=comparisons,
        test_images=len(LABELS), **extra,
    )  # fmt: skip


CLASSIC = Arm(name="classic", generators=("classic",))
DIFFUSION = Arm(name="diffusion", generators=("diffusion",))


def two_arm_result(*, significant: bool = False) -> ExperimentResult:
    """2 arms x 1 classifier x 2 seeds, the thesis references and a config holding a secret."""
    cells = [_cell(arm, "cnn", seed) for arm in ("classic", "diffusion") for seed in (0, 1)]
    comparison = Comparison(
        arm="diffusion", baseline="classic", classifier="cnn", per_seed_differences=(2 / 6, 0.0),
        mean_difference=1 / 6, mcnemar_p=0.25, bootstrap_ci=(-0.05, 0.4), significant=significant,
    )  # fmt: skip
    return _result(
        cells, (CLASSIC, DIFFUSION), ("cnn",), (0, 1), (comparison,),
        references=THESIS_REFERENCES,
        config_text=f'[generators.openai]\napi_key = "{SECRET}"\nmodel = "dall-e-2"\n',
        environment={"python": "3.11", "torch": "2.14.1"},
        started="2024-05-01T10:00:00", finished="2024-05-01T10:05:00", seconds=300.0,
    )  # fmt: skip


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> LocalImageStore:
    store = LocalImageStore(tmp_path_factory.mktemp("store"))
    for grade in range(5):
        store.put(real_record(f"r{grade}", grade), png_bytes(grade))
        for arm in ("classic", "diffusion"):
            store.put(synthetic_record(f"{arm}-{grade}", grade, augmentation=arm), png_bytes(10 + grade))
    return store


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory, store: LocalImageStore) -> tuple[Path, list[str]]:
    run = tmp_path_factory.mktemp("run")
    return run, HtmlMarkdownReportWriter(seed=0).write(two_arm_result(), str(run), store)


def _html(run: Path) -> str:
    return (run / "report.html").read_text("utf-8")


def _without_data_uris(text: str) -> str:
    return re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", text)


def test_writer_is_a_report_writer() -> None:
    assert isinstance(HtmlMarkdownReportWriter(seed=0), ReportWriter)


def test_report_files_and_figures_are_written(written: tuple[Path, list[str]]) -> None:
    run, paths = written
    names = {Path(p).relative_to(run).as_posix() for p in paths}
    assert {"report.html", "report.md", "figures/bar-chart.png", "figures/confusion-cnn.png"} <= names
    assert {"figures/learning-cnn.png", "figures/contact-classic.png", "figures/contact-diffusion.png"} <= names
    for path in paths:
        assert Path(path).stat().st_size > 0
    assert not [p for p in run.rglob("*.tmp")], "temporary files left behind"
    assert (run / "figures" / "bar-chart.png").read_bytes().startswith(b"\x89PNG")


def test_html_is_self_contained(written: tuple[Path, list[str]]) -> None:
    page = _html(written[0])
    figures = sorted(p.name for p in (written[0] / "figures").glob("*.png"))
    assert page.count('src="data:image/png;base64,') == len(figures)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "http" not in _without_data_uris(page).lower()
    assert "<script" not in page and "<link" not in page


def test_html_shows_tables_verdicts_and_the_weight_of_one_image(written: tuple[Path, list[str]]) -> None:
    page = _html(written[0])
    for text in ("classic", "diffusion", "cnn", "quadratic kappa", "McNemar p", "0.250"):
        assert text in page
    assert '<span class="badge nsig">not significant</span>' in page
    assert "1 test image = 16.67 points of accuracy" in page
    assert "fewer than 3 seeds are unreliable" in page
    # Per-seed counts: classic seed 0 grades 4 of the 6 test images right.
    assert "4/6" in page and "+2 images" in page


def test_html_shows_references_as_published_figures(written: tuple[Path, list[str]]) -> None:
    page = _html(written[0])
    assert "Published reference figures" in page
    for accuracy in ("33.01", "40.78", "41.74", "53.40"):
        assert accuracy in page
    assert "single seed, not comparable on paired terms" in page
    assert "DALL-E 2 variations" in page


def test_reproducibility_shows_config_without_secrets(written: tuple[Path, list[str]]) -> None:
    run = written[0]
    for text in (_html(run), (run / "report.md").read_text("utf-8")):
        assert SECRET not in text
        assert "dall-e-2" in text and "torch" in text and "balance-total 20" in text


def test_markdown_has_the_main_table_and_relative_figures(written: tuple[Path, list[str]]) -> None:
    md = (written[0] / "report.md").read_text("utf-8")
    header = (
        "| arm | classifier | seeds | accuracy (%) | balanced accuracy (%) | macro-F1 (%) | quadratic kappa | loss |"
    )
    assert header in md
    assert re.search(r"^\| diffusion \| cnn \| 2 \| 83\.33 ± ", md, re.MULTILINE)
    assert "](figures/bar-chart.png)" in md and "](figures/contact-diffusion.png)" in md
    assert "data:image" not in md
    assert "1 test image = 16.67 points of accuracy" in md
    # Summed confusion counts of classic over both seeds: two grade-0 images right per seed.
    assert "| true 0 | 4 | 0 | 0 | 0 | 0 | 4 |" in md


def test_significant_comparison_is_flagged(tmp_path: Path, store: LocalImageStore) -> None:
    HtmlMarkdownReportWriter(seed=0).write(two_arm_result(significant=True), str(tmp_path), store)
    assert '<span class="badge sig">significant</span>' in _html(tmp_path)
    assert "**significant**" in (tmp_path / "report.md").read_text("utf-8")


def test_screen_acceptance_per_grade_is_a_table_and_absent_without_a_screen(
    tmp_path: Path, store: LocalImageStore, written: tuple[Path, list[str]]
) -> None:
    rows = (ScreenAcceptance(grade=Grade(1), judged=8, accepted=5, threshold=0.31),
            ScreenAcceptance(grade=Grade(4), judged=4, accepted=4, threshold=0.2))  # fmt: skip
    result = two_arm_result().model_copy(update={"acceptance": {"diffusion": rows}})
    HtmlMarkdownReportWriter(seed=0).write(result, str(tmp_path), store)
    markdown = (tmp_path / "report.md").read_text("utf-8")
    assert "| diffusion | grade 1 | 8 | 5 | 62.5% | 0.310 |" in markdown
    assert "| diffusion | grade 4 | 4 | 4 | 100.0% | 0.200 |" in markdown
    assert "Likelihood screen" not in (written[0] / "report.md").read_text("utf-8")


def test_single_seed_single_arm_without_baseline_nan_loss_and_uneven_epochs(
    tmp_path: Path, store: LocalImageStore
) -> None:
    cells = [_cell("diffusion", "cnn", 0, epochs=2, loss=math.nan), _cell("diffusion", "resnet50", 0, epochs=5)]
    result = _result(cells, (DIFFUSION,), ("cnn", "resnet50"), (0,))
    paths = HtmlMarkdownReportWriter(seed=0).write(result, str(tmp_path), store)
    page = _html(tmp_path)
    assert "no classic arm" in page
    assert "Only 1 seed per cell" in page
    assert "n/a" in page
    assert "Published reference figures" not in page
    assert {"learning-cnn.png", "learning-resnet50.png"} <= {Path(p).name for p in paths}


def test_missing_synthetic_images_leave_a_note_not_a_crash(tmp_path: Path) -> None:
    empty = LocalImageStore(tmp_path / "empty-store")
    HtmlMarkdownReportWriter(seed=0).write(two_arm_result(), str(tmp_path / "run"), empty)
    page = _html(tmp_path / "run")
    assert "Contact sheet of arm diffusion unavailable" in page
    assert not (tmp_path / "run" / "figures" / "contact-diffusion.png").exists()


def test_same_result_gives_the_same_report(
    tmp_path: Path, store: LocalImageStore, written: tuple[Path, list[str]]
) -> None:
    HtmlMarkdownReportWriter(seed=0).write(two_arm_result(), str(tmp_path), store)
    assert (tmp_path / "report.html").read_bytes() == (written[0] / "report.html").read_bytes()


def test_unwritable_run_folder_is_one_clear_error(tmp_path: Path, store: LocalImageStore) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    with pytest.raises(MedaugError, match="not-a-folder"):
        HtmlMarkdownReportWriter(seed=0, contact_sheet=lambda *a, **k: png_bytes()).write(
            two_arm_result(), str(blocker), store
        )


def test_one_image_sentence_for_idrid() -> None:
    assert "1 test image = 0.97 points of accuracy" in one_image_sentence(103)


def test_redact_hides_secret_values_only() -> None:
    text = redact('api_key = "sk-1"\naws_secret_access_key = "abc"\nmodel = "m"\nempty_key = ""\n')
    assert "sk-1" not in text and "abc" not in text
    assert 'model = "m"' in text and 'empty_key = ""' in text


def test_bootstrap_builds_the_report_writer() -> None:
    from medaug.composition.factories import build_report_writer

    assert isinstance(build_report_writer(0), ReportWriter)


def _comparison(arm: str, difference: float, ci: tuple[float, float], p: float, significant: bool) -> Comparison:
    return Comparison(
        arm=arm, baseline="classic", classifier="cnn", per_seed_differences=(difference, difference, difference),
        mean_difference=difference, mcnemar_p=p, bootstrap_ci=ci, significant=significant,
    )  # fmt: skip


def _with_comparisons(*comparisons: Comparison) -> ExperimentResult:
    return two_arm_result().model_copy(update={"comparisons": comparisons, "test_images": 103})


def test_the_answer_names_the_significant_arm_its_gain_and_certainty() -> None:
    result = _with_comparisons(
        _comparison("diffusion", 3 / 103, (0.0097, 0.0485), 0.031, True),
        _comparison("openai", 1 / 103, (-0.02, 0.04), 0.5, False),
    )
    assert answer_sentence(result) == (
        "The diffusion arm beats the classic arm with cnn by 2.91 points of test accuracy (3 of the 103 test "
        "images, averaged over 3 seeds), a significant difference (bootstrap 95% interval [+0.97, +4.85] points, "
        "McNemar p = 0.031); 1 of the 2 comparisons with classic is significant."
    )


def test_the_answer_says_when_no_arm_differs_and_a_significant_loss_is_named() -> None:
    neutral = answer_sentence(_with_comparisons(_comparison("diffusion", -2 / 103, (-0.05, 0.01), 0.4, False)))
    assert neutral.startswith("No arm differs significantly from the classic arm: the closest, diffusion with cnn, ")
    assert "-1.94 points" in neutral and "[-5.00, +1.00] points includes 0, McNemar p = 0.400" in neutral
    loss = answer_sentence(_with_comparisons(_comparison("diffusion", -5 / 103, (-0.08, -0.02), 0.0004, True)))
    assert loss.startswith("The diffusion arm falls behind the classic arm with cnn by 4.85 points")
    assert "McNemar p < 0.001" in loss


def test_the_answer_opens_the_report_before_the_tables(written: tuple[Path, list[str]]) -> None:
    page = _html(written[0])
    assert page.index('<p class="answer">No arm differs significantly') < page.index("<table")
    md = (written[0] / "report.md").read_text("utf-8")
    assert md.index("**No arm differs significantly") < md.index("| arm |")


def test_without_a_baseline_the_answer_says_nothing_was_tested() -> None:
    cells = [_cell("diffusion", "cnn", 0)]
    sentence = answer_sentence(_result(cells, (DIFFUSION,), ("cnn",), (0,)))
    assert sentence.startswith("This experiment has no classic arm to compare with") and "100.00% (diffusion with cnn)" in sentence
