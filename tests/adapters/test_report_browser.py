"""report.html as headless Chromium draws it, at a laptop's width (1300 px), a narrow window (800 px) and on paper.

Two reports: one of a tiny phantom experiment that this module runs through the CLI (real training, one
seed, one epoch; its result is then given a quality assessment built here, as assessing takes minutes), and one of a
hand-built wide result (four arms, two classifiers, three seeds, references, long arm names) that stresses
the tables. A full-page screenshot of each report at each width, and its PDF, are kept in
``$MEDAUG_ARTEFACTS`` (default: this test's temporary folder).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from medaug.adapters.png import encode_png
from medaug.adapters.runs import LocalRunFolder
from medaug.adapters.stores.local import LocalImageStore
from medaug.cli.app import app
from medaug.composition.factories import build_report_writer, build_store
from medaug.composition.settings import load_settings
from medaug.domain import Grade, Origin, Split
from medaug.domain.experiment import THESIS_REFERENCES, Arm, Comparison, ExperimentResult
from medaug.domain.quality import NearestReal, QualityReport
from tests.adapters.test_quality_report import _report as quality_report
from tests.adapters.test_report import _cell, _result
from tests.browser import Browser, chromium, find_programs
from tests.conftest import png_bytes, real_record, synthetic_record
from tests.experiments import BALANCE, tiny_experiment
from tests.quality_images import fundus_like

pytestmark = pytest.mark.browser

WIDTHS = (1300, 800)
PRINT_WIDTH = 1032
"""Printable width in CSS pixels of A4 landscape with the template's 12 mm margins (273 mm at 96 px/in)."""

TINY = tiny_experiment("tiny-browser", n=40, experiment="val_fraction = 0.25\n" + BALANCE)

MEASURE = """
const viewport = document.documentElement.clientWidth;
const exemptScrollBoxes = arguments[0];
function describe(el) {
  const section = el.closest('section');
  const cls = typeof el.className === 'string' && el.className ? '.' + el.className.split(' ').join('.') : '';
  return `${el.tagName.toLowerCase()}${cls} in #${section ? section.id : 'page'} ` +
         `(${Math.round(el.getBoundingClientRect().width)} px): ${(el.textContent || '').trim().slice(0, 50)}`;
}
function inScrollBox(el) {
  for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
    const o = getComputedStyle(p).overflowX;
    if (o === 'auto' || o === 'scroll') return true;
  }
  return false;
}
const tooWide = [];
for (const el of document.body.querySelectorAll('*')) {
  if (exemptScrollBoxes && inScrollBox(el)) continue;
  const r = el.getBoundingClientRect();
  if (r.width > 0 && (r.left < -1 || r.right > viewport + 1)) tooWide.push(describe(el));
}
const wraps = [...document.querySelectorAll('.table-wrap')];
const scrolling = wraps.filter(w => w.scrollWidth > w.clientWidth + 1);
const links = [...document.querySelectorAll('nav.toc a')].map(a => a.getAttribute('href'));
return {
  viewport: viewport,
  pageWidth: document.documentElement.scrollWidth,
  tooWide: tooWide,
  scrolling: scrolling.map(w => describe(w.closest('figure') || w)),
  unscrollable: scrolling.filter(w => !['auto', 'scroll'].includes(getComputedStyle(w).overflowX)).map(describe),
  tables: wraps.length,
  hiddenTables: [...document.querySelectorAll('table')].filter(t => !t.checkVisibility()).length,
  images: document.images.length,
  broken: [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt),
  links: links,
  unresolved: links.filter(h => !h.startsWith('#') || !(document.getElementById(h.slice(1)) || {}).tagName
                                 || document.getElementById(h.slice(1)).tagName !== 'SECTION'),
  sections: document.querySelectorAll('main > section').length,
  answerBeforeTables: (() => {
    const answer = document.querySelector('p.answer'), table = document.querySelector('table');
    return !!answer && !!table && !!(answer.compareDocumentPosition(table) & Node.DOCUMENT_POSITION_FOLLOWING);
  })(),
};
"""

STICKY = """
const wrap = arguments[0];
const cell = wrap.querySelector('tbody tr td');
const before = cell.getBoundingClientRect().left - wrap.getBoundingClientRect().left;
wrap.scrollLeft = 200;
const moved = wrap.scrollLeft;
const after = cell.getBoundingClientRect().left - wrap.getBoundingClientRect().left;
wrap.scrollLeft = 0;
return [before, moved, after];
"""


@pytest.fixture(scope="module")
def programs() -> tuple[str, str]:
    found = find_programs()
    if found is None:
        pytest.skip("chromium or chromedriver is not installed (.ci/run installs Debian's chromium and chromium-driver)")
    return found


@pytest.fixture(scope="module")
def browser(programs: tuple[str, str]) -> Iterator[Browser]:
    with chromium(*programs) as opened:
        yield opened


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = Path(os.environ.get("MEDAUG_ARTEFACTS") or tmp_path_factory.mktemp("artefacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# -- the reports ------------------------------------------------------------------------------------


def _with_store_ids(report: QualityReport, store: LocalImageStore, arm: str) -> QualityReport:
    """A quality assessment naming real images of ``store``, so its worst-pairs figure draws them."""
    synthetic = store.list(augmentation=arm)[:2]
    real = store.list(split=Split.TRAIN, origin=Origin.REAL)[:2]
    nearest = tuple(
        NearestReal(image_id=s.id, grade=s.grade, pixel_id=r.id, pixel_transform="hflip",
                    pixel_correlation=0.99 - 0.5 * i, ssim=0.95 - 0.4 * i, feature_id=r.id,
                    feature_cosine=0.9, flagged=i == 0)
        for i, (s, r) in enumerate(zip(synthetic, real, strict=False))
    )  # fmt: skip
    memorisation = report.memorisation.model_copy(update={"nearest": nearest, "reference_nearest": nearest[1:]})
    return report.model_copy(update={"memorisation": memorisation})


@pytest.fixture(scope="module")
def tiny_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report of a tiny phantom experiment run through the CLI, with the quality of its classic arm."""
    root = tmp_path_factory.mktemp("tiny")
    (root / "tiny.toml").write_text(TINY)
    run = root / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        patch.setenv("MEDAUG_WORK_DIR", str(root / "work"))
        ran = CliRunner().invoke(app, ["--quiet", "experiment", "run", "tiny.toml", "--run-dir", str(run)])
        assert ran.exit_code == 0, ran.output
        result = LocalRunFolder(run).load_result()
        store = build_store(load_settings(), result.environment["store"])
        quality = _with_store_ids(quality_report("classic"), store, "classic")  # type: ignore[arg-type]
        LocalRunFolder(run).save_result(result.model_copy(update={"quality": {"classic": quality}}))
        rebuilt = CliRunner().invoke(app, ["--quiet", "experiment", "report", str(run)])
        assert rebuilt.exit_code == 0, rebuilt.output
    assert json.loads((run / "results.json").read_text())["quality"], "the quality section is part of the check"
    return run / "report.html"


def _wide_result() -> ExperimentResult:
    arms = ("classic", "diffusion", "openai-edits-with-a-rather-long-name", "dcgan")
    classifiers, seeds = ("cnn", "resnet50"), (0, 1, 2)
    cells = [_cell(arm, c, seed) for arm in arms for c in classifiers for seed in seeds]
    comparisons = tuple(
        Comparison(arm=arm, baseline="classic", classifier=c, per_seed_differences=(1 / 6, 0.0, 2 / 6),
                   mean_difference=1 / 6, mcnemar_p=0.012 if arm == "diffusion" else 0.3,
                   bootstrap_ci=(0.02, 0.3) if arm == "diffusion" else (-0.05, 0.4), significant=arm == "diffusion")
        for arm in arms[1:] for c in classifiers
    )  # fmt: skip
    spec_arms = tuple(Arm(name=a, generators=(a.split("-")[0],)) for a in arms)
    result = _result(cells, spec_arms, classifiers, seeds, comparisons, references=THESIS_REFERENCES,
                     config_text='[generators.openai]\napi_key = "sk-x"\n', environment={"python": "3.11"},
                     started="2024-05-01T10:00:00", finished="2024-05-01T11:02:00", seconds=3720.0)  # fmt: skip
    quality = {arm: quality_report(arm) for arm in arms[1:3]}
    return result.model_copy(update={"quality": quality})


@pytest.fixture(scope="module")
def wide_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report of a hand-built result with many arms, classifiers and seeds: wide tables."""
    root = tmp_path_factory.mktemp("wide")
    store = LocalImageStore(root / "store")
    for grade in range(5):
        store.put(real_record(f"r{grade}", grade), png_bytes(grade))
        for arm in ("diffusion", "openai-edits-with-a-rather-long-name", "dcgan"):
            store.put(synthetic_record(f"{arm}-{grade}", grade, augmentation=arm), png_bytes(10 + grade))
    for arm in ("diffusion", "openai-edits-with-a-rather-long-name"):
        store.put(synthetic_record(f"{arm}-copy", 2, augmentation=arm), encode_png(fundus_like(0, 2)))
        store.put(synthetic_record(f"{arm}-new", 2, augmentation=arm), encode_png(fundus_like(9, 2)))
    store.put(real_record("r0-train", int(Grade(2))), encode_png(fundus_like(1, 2)))
    build_report_writer(0).write(_wide_result(), str(root / "run"), store)
    return root / "run" / "report.html"


@pytest.fixture(scope="module")
def reports(tiny_report: Path, wide_report: Path) -> dict[str, Path]:
    return {"tiny": tiny_report, "wide": wide_report}


@pytest.fixture(scope="module")
def measured(browser: Browser, reports: dict[str, Path], artefacts: Path) -> dict[tuple[str, int | str], Any]:
    """Each report at each width (and printed): what the page shows, its console errors, a screenshot."""
    facts: dict[tuple[str, int | str], Any] = {}
    for name, page in reports.items():
        for width in WIDTHS:
            browser.open(page, width=width)
            facts[name, width] = {**browser.run(MEASURE, True), "errors": browser.severe_logs()}
            wraps = browser.driver.find_elements("css selector", ".table-wrap")
            scrolling = [w for w in wraps if browser.run("return arguments[0].scrollWidth > arguments[0].clientWidth + 1", w)]
            facts[name, width]["sticky"] = [browser.run(STICKY, w) for w in scrolling]
            browser.screenshot(artefacts / f"report-{name}-{width}px.png")
        browser.open(page, width=PRINT_WIDTH, media="print")
        facts[name, "print"] = {**browser.run(MEASURE, False), "errors": browser.severe_logs()}
        facts[name, "pdf"] = browser.pdf(artefacts / f"report-{name}.pdf")
    return facts


CASES = [(name, width) for name in ("tiny", "wide") for width in WIDTHS]


# -- the checks -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "width"), CASES)
def test_nothing_is_wider_than_the_window(measured: dict, name: str, width: int) -> None:
    page = measured[name, width]
    assert page["viewport"] == width
    assert page["tooWide"] == [], "elements past the right edge (tables must scroll inside their own box)"
    assert page["pageWidth"] <= width, "the page itself scrolls sideways"
    assert page["unscrollable"] == []


@pytest.mark.parametrize("name", ["tiny", "wide"])
def test_at_a_laptop_width_the_tiny_reports_tables_fit_and_wide_ones_scroll_with_a_sticky_first_column(
    measured: dict, name: str
) -> None:
    laptop, narrow = measured[name, 1300], measured[name, 800]
    if name == "tiny":
        assert laptop["scrolling"] == [], "a table of the tiny experiment's report does not fit at 1300 px"
    assert narrow["scrolling"], "at 800 px some table must be too wide, or this check checks nothing"
    assert len(narrow["sticky"]) == len(narrow["scrolling"])
    for before, moved, after in narrow["sticky"]:
        assert moved > 0 and abs(after - before) < 1, "the first column scrolled out of view"


@pytest.mark.parametrize(("name", "width"), CASES)
def test_every_image_loads(measured: dict, name: str, width: int) -> None:
    page = measured[name, width]
    assert page["images"] >= 5
    assert page["broken"] == []


@pytest.mark.parametrize("name", ["tiny", "wide"])
def test_every_link_of_the_contents_leads_to_a_section(measured: dict, name: str) -> None:
    page = measured[name, 1300]
    assert len(page["links"]) == page["sections"] >= 9
    assert page["unresolved"] == []
    assert "#quality" in page["links"]


@pytest.mark.parametrize(("name", "width"), [*CASES, ("tiny", "print"), ("wide", "print")])
def test_no_console_errors(measured: dict, name: str, width: int | str) -> None:
    assert measured[name, width]["errors"] == []


@pytest.mark.parametrize("name", ["tiny", "wide"])
def test_the_answer_comes_before_the_tables(measured: dict, name: str) -> None:
    assert measured[name, 1300]["answerBeforeTables"]


@pytest.mark.parametrize("name", ["tiny", "wide"])
def test_the_page_prints_without_cut_or_hidden_tables(measured: dict, name: str) -> None:
    printed = measured[name, "print"]
    assert printed["viewport"] == PRINT_WIDTH
    assert printed["tooWide"] == [], "on paper nothing scrolls: these would be cut"
    assert printed["scrolling"] == []
    assert measured[name, 1300]["hiddenTables"] > 0, "on screen the per-seed counts are folded away"
    assert printed["hiddenTables"] == 0, "folded tables must unfold on paper"
    pdf = measured[name, "pdf"]
    assert pdf.startswith(b"%PDF") and pdf.count(b"/Type /Page") > 2
