"""The likelihood screen's acceptance rates per arm and grade, as one report table."""

from __future__ import annotations

from medaug.adapters.report_document import Block, Table
from medaug.domain.experiment import ExperimentResult


def acceptance_blocks(result: ExperimentResult) -> list[Block]:
    """A table of judged/accepted images per grade for each screened arm (nothing when none was)."""
    rows = [
        (
            arm,
            f"grade {int(row.grade)}",
            str(row.judged),
            str(row.accepted),
            f"{row.rate:.1%}",
            "" if row.threshold is None else f"{row.threshold:.3f}",
        )
        for arm, grades in result.acceptance.items()
        for row in grades
    ]
    if not rows:
        return []
    caption = (
        "Likelihood screen: generated images judged and accepted per grade (a rejected image is made "
        "again with a new seed, up to the attempt limit); the threshold is the grade-confidence a "
        "real-trained classifier had to give."
    )
    return [Table(("arm", "grade", "judged", "accepted", "acceptance", "threshold"), tuple(rows), caption)]
