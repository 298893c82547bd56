"""Figures and facts of an experiment result in words: percentages, points, images, durations, redaction."""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Sequence

from medaug.adapters.report_document import Stat
from medaug.adapters.reporting import plots
from medaug.domain.experiment import ExperimentResult, Summary, Verdict

_SECRET_LINE = re.compile(r"(?im)^(\s*[\w.-]*(?:key|secret|token|password)[\w.-]*\s*=\s*)(?!\"\"|''|null\b)(\S.*)$")
_SECRET_NAME = re.compile(r"(?i)key|secret|token|password")


def one_image_sentence(n: int) -> str:
    """The weight of a single test image, e.g. ``1 test image = 0.97 points of accuracy``."""
    if n <= 0:
        return "The number of test images is unknown."
    return (
        f"With {n} test images, 1 test image = {100.0 / n:.2f} points of accuracy: "
        "a difference of a few points is a few images."
    )


def count_test_images(result: ExperimentResult) -> int:
    """Number of test images (from the result, else from its cells)."""
    if result.test_images > 0:
        return result.test_images
    return result.cells[0].metrics.n if result.cells else 0


def seed_count(result: ExperimentResult) -> int:
    """The fewest seeds any arm x classifier cell group was run with."""
    counts = [len(result.cells_for(a, c)) for a, c in pairs(result)]
    return min(counts) if counts else len(result.spec.seeds)


def redact(text: str) -> str:
    """Config text with the values of keys, secrets, tokens and passwords replaced by ``***``."""
    return _SECRET_LINE.sub(lambda m: f'{m.group(1)}"***"', text)


def redact_value(name: str, value: str) -> str:
    """``***`` for a value whose name says it is a secret."""
    return "***" if _SECRET_NAME.search(name) else value


def pairs(result: ExperimentResult) -> list[tuple[str, str]]:
    """(arm, classifier) pairs that have cells, in the experiment's order."""
    return [
        (arm, classifier)
        for arm in plots.arm_order(result)
        for classifier in plots.classifier_order(result)
        if result.cells_for(arm, classifier)
    ]


def stat(summary: Summary | None, as_percent: bool) -> Stat:
    """A summary's mean ± standard deviation with its interval below, or just the mean of one seed."""
    if summary is None:
        return Stat("n/a")
    fmt = pct if as_percent else num
    if summary.n < 2:
        return Stat(fmt(summary.mean))
    return Stat(f"{fmt(summary.mean)} ± {fmt(summary.std)}", f"[{fmt(summary.ci_low)}, {fmt(summary.ci_high)}]")


def finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def pct(value: float | None, digits: int = 2) -> str:
    return f"{100.0 * value:.{digits}f}" if finite(value) else "n/a"


def num(value: float | None) -> str:
    return f"{value:.3f}" if finite(value) else "n/a"


def points(difference: float) -> str:
    """An accuracy difference in signed percentage points."""
    return f"{100.0 * difference:+.2f}" if finite(difference) else "n/a"


def images(difference: float, n: int) -> str:
    """An accuracy difference as a signed count of test images, e.g. ``+2 images``."""
    if not finite(difference) or n <= 0:
        return "n/a"
    count = difference * n
    if abs(count) < 0.05:
        return "0 images"
    whole = abs(count - round(count)) < 1e-6
    text = f"{count:+.0f}" if whole else f"{count:+.1f}"
    return f"{text} image{'' if whole and abs(round(count)) == 1 else 's'}"


def as_images(accuracy: float, n: int) -> str:
    """A published accuracy as test images right out of ``n``."""
    if n <= 0:
        return "n/a"
    count = round(accuracy * n)
    # Published percentages are rounded or truncated to 2 decimals: "≈" unless exactly count/n.
    return f"{count}/{n}" if abs(count / n - accuracy) < 5e-5 else f"≈ {count}/{n}"


def p_value(p: float) -> str:
    """A p-value to 3 decimals, or ``< 0.001``."""
    if not finite(p):
        return "n/a"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def mean(values: Sequence[float]) -> float:
    """The mean of the finite values (NaN when none is)."""
    kept = [v for v in values if math.isfinite(v)]
    return statistics.fmean(kept) if kept else math.nan


def duration(seconds: float) -> str:
    if not finite(seconds) or seconds <= 0:
        return "n/a"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def options(values: dict[str, object]) -> str:
    """An arm's options as ``k=v`` pairs, secret values redacted."""
    return ", ".join(f"{k}={redact_value(k, str(v))}" for k, v in sorted(values.items())) or "-"


def slug(name: str) -> str:
    """A file-name-safe form of ``name``."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-") or "unnamed"


def interval_name(verdict: Verdict) -> str:
    """The primary test's interval in words (``bootstrap 95% interval``...)."""
    return "corrected 95% interval" if verdict.test == "corrected-t" else "bootstrap 95% interval"


def p_name(verdict: Verdict) -> str:
    """The primary test's p-value in words (``McNemar p``...)."""
    return "corrected t-test p" if verdict.test == "corrected-t" else "McNemar p"
