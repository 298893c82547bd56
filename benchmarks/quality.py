"""Benchmark: how long ``medaug quality`` takes, stage by stage, on a store.

Run from the repository root:
``python benchmarks/quality.py --store /tmp/idrid-q [--augmentation classic] [--threads 1] [--tstr]``.
Without ``--store`` it builds a phantom store (``--n`` images at ``--size`` px) with a classic
augmentation set in a temporary folder. It prints the time of the grading CNN's training, of a
second assessment that reuses the cached CNN, of train-on-synthetic, and the headline figures.
Nothing is asserted: the figures are for reading.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from medaug.adapters.quality.analyzer import FundusQualityAnalyzer
from medaug.adapters.quality.config import QualityConfig
from medaug.adapters.stores.local import LocalImageStore
from medaug.application.ports import ImageStore
from medaug.application.services.quality import assess_quality, augmentation_sets
from medaug.composition import factories
from medaug.composition.settings import load_settings
from medaug.domain.quality import QualityReport


def phantom_store(root: Path, n: int, size: int) -> ImageStore:
    """A phantom store with a classic augmentation set (balance-largest)."""
    from medaug.application.services.augment import augment, plan_augmentation
    from medaug.application.services.ingest import ingest
    from medaug.domain import PlanPolicy

    settings = load_settings(image_size=size)
    store = LocalImageStore(root)
    ingest(factories.build_phantom_source(n, seed=0, size=size), factories.build_preprocessor(settings), store, seed=0)
    plan = plan_augmentation(store, PlanPolicy.balance_largest(), seed=0, augmentation="classic", generators=["classic"])
    augment(store, plan, {"classic": factories.build_generator("classic", settings, store)}, size=size)
    return store


def timed(analyzer: FundusQualityAnalyzer, store: ImageStore, augmentation: str) -> tuple[QualityReport, float]:
    """One assessment and its wall time in seconds."""
    started = time.perf_counter()
    report = assess_quality(store, analyzer, augmentation)
    return report, time.perf_counter() - started


def headline(report: QualityReport) -> str:
    """The figures a reader looks at first, synthetic vs held-out real."""
    s, r = report.overall, report.reference
    f, rf = report.fidelity, report.reference_fidelity
    tstr = f" TSTR acc {f.tstr_accuracy:.3f} (real {rf.tstr_accuracy:.3f})" if f.tstr_accuracy is not None else ""
    return (
        f"FID {s.fid:.2f} (held-out real {r.fid:.2f}), KID {s.kid_mean:.4f} ({r.kid_mean:.4f}), "
        f"P/R/D/C {s.precision:.2f}/{s.recall:.2f}/{s.density:.2f}/{s.coverage:.2f} "
        f"({r.precision:.2f}/{r.recall:.2f}/{r.density:.2f}/{r.coverage:.2f}), graded as intended "
        f"{f.overall.agreement:.3f} ({rf.overall.agreement:.3f}), near-copies {report.flagged}/{s.n_images} "
        f"(held-out {report.memorisation.reference.flagged if report.memorisation.reference else 0}/{r.n_images}){tstr}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", type=Path, help="An ingested store with an augmentation set.")
    parser.add_argument("--augmentation", help="The set to assess (default: the first one).")
    parser.add_argument("--n", type=int, default=300, help="Phantom images when no store is given.")
    parser.add_argument("--size", type=int, default=64, help="Phantom image size when no store is given.")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's).")
    parser.add_argument("--tstr", action="store_true", help="Also time train-on-synthetic / test-on-real.")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="medaug-quality-bench-"))
    if args.store is not None:
        store: ImageStore = LocalImageStore(args.store)
    else:
        started = time.perf_counter()
        store = phantom_store(work / "store", args.n, args.size)
        print(f"phantom store: {args.n} images at {args.size} px, classic set, built in {time.perf_counter() - started:.1f} s")
    augmentation = args.augmentation or augmentation_sets(store)[0]
    config = QualityConfig(num_threads=args.threads, tstr=False)
    report, first = timed(FundusQualityAnalyzer(config, cache_dir=work / "cache", seed=0, device="auto"), store, augmentation)
    print(f"{augmentation}: first assessment (trains the grading CNN, {config.cnn.epochs} epochs at "
          f"{config.cnn.input_size} px): {first:.1f} s")
    _, cached = timed(FundusQualityAnalyzer(config, cache_dir=work / "cache", seed=0, device="auto"), store, augmentation)
    print(f"{augmentation}: assessment with the cached CNN: {cached:.1f} s")
    if args.tstr:
        with_tstr = config.model_copy(update={"tstr": True})
        report, seconds = timed(FundusQualityAnalyzer(with_tstr, cache_dir=work / "cache", seed=0, device="auto"), store, augmentation)
        print(f"{augmentation}: with train-on-synthetic: {seconds:.1f} s ({seconds - cached:.1f} s for TSTR)")
    print(f"{augmentation}: {headline(report)}")


if __name__ == "__main__":
    main()
