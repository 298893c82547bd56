"""The shortcut check: can real and synthetic images be told apart in the grader's feature space,
and does the synthetic share depend on the grade? (see ``domain.quality.ShortcutCheck``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import chi2_contingency, mannwhitneyu, rankdata
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from medaug.domain import FundusImage
from medaug.domain.grades import ALL_GRADES
from medaug.domain.quality import ShortcutCheck

FOLDS = 5
BOOTSTRAPS = 1000


def shortcut_check(
    real: Sequence[FundusImage],
    real_features: np.ndarray,
    synthetic: Sequence[FundusImage],
    synthetic_features: np.ndarray,
    *,
    seed: int,
    policy: str | None = None,
) -> ShortcutCheck:
    """The two-sample test of real vs synthetic features and the synthetic share per grade.

    Folds are grouped by source image: a synthetic image falls in the group of the real image
    it was derived from (its own group when it has none), so the classifier is always tested on
    sources and variations it never saw.

    Args:
        real, synthetic: the records (grades, ids, provenance), in the order of their features.
        real_features, synthetic_features: ``N x D`` features in the grader's space.
        seed: the bootstrap's seed.
        policy: the plan policy, to name in the report.
    """
    share, chi2, chi2_p = grade_dependence(real, synthetic)
    base = dict(n_real=len(real), n_synthetic=len(synthetic), share=share, chi2=chi2, chi2_p=chi2_p, policy=policy)
    groups = [r.id for r in real] + [s.provenance.source_ids[0] if s.provenance.source_ids else s.id for s in synthetic]
    folds = min(FOLDS, len(set(groups)))
    if len(real) < 2 or len(synthetic) < 2 or folds < 2:
        return ShortcutCheck(**base)
    features = np.concatenate([np.asarray(real_features, dtype=np.float64), np.asarray(synthetic_features, dtype=np.float64)])
    labels = np.r_[np.zeros(len(real)), np.ones(len(synthetic))]
    scores = np.zeros(len(labels))
    for train, test in GroupKFold(n_splits=folds).split(features, labels, groups):
        if len(set(labels[train])) < 2:
            scores[test] = 0.5
            continue
        model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
        model.fit(features[train], labels[train])
        scores[test] = model.decision_function(features[test])
    auc = float(roc_auc_score(labels, scores))
    low, high = _bootstrap(labels, scores, np.asarray(groups), seed)
    p_value = float(mannwhitneyu(scores[labels == 1], scores[labels == 0], alternative="greater").pvalue)
    return ShortcutCheck(**base, folds=folds, auc=auc, auc_low=low, auc_high=high, p_value=p_value)


def grade_dependence(
    real: Sequence[FundusImage], synthetic: Sequence[FundusImage]
) -> tuple[dict, float | None, float | None]:  # type: ignore[type-arg]
    """The synthetic share per grade and the chi-square test of independence of origin and grade."""
    real_counts = np.array([sum(int(r.grade) == int(g) for r in real) for g in ALL_GRADES])
    synthetic_counts = np.array([sum(int(s.grade) == int(g) for s in synthetic) for g in ALL_GRADES])
    present = (real_counts + synthetic_counts) > 0
    share = {
        g: float(synthetic_counts[i] / (real_counts[i] + synthetic_counts[i]))
        for i, g in enumerate(ALL_GRADES) if present[i]
    }
    table = np.stack([real_counts[present], synthetic_counts[present]])
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return share, None, None
    result = chi2_contingency(table)
    return share, float(result.statistic), float(result.pvalue)


def _bootstrap(labels: np.ndarray, scores: np.ndarray, groups: np.ndarray, seed: int) -> tuple[float | None, float | None]:
    """95 % interval of the AUC, resampling whole source groups (the unit the folds respect)."""
    rng = np.random.default_rng(seed)
    names, index = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(index == i) for i in range(len(names))]
    aucs = []
    for _ in range(BOOTSTRAPS):
        chosen = np.concatenate([members[i] for i in rng.integers(0, len(names), len(names))])
        auc = _auc(labels[chosen], scores[chosen])
        if auc is not None:
            aucs.append(auc)
    if not aucs:
        return None, None
    return float(np.percentile(aucs, 2.5)), float(np.percentile(aucs, 97.5))


def _auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """ROC AUC from ranks (the Mann-Whitney statistic): ``roc_auc_score``'s value, fast enough to bootstrap."""
    positives = labels == 1
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    if not n_pos or not n_neg:
        return None
    ranks = rankdata(scores)
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
