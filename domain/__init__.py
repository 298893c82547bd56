"""The pure domain of medaug: grades, images, plans and experiments.

Nothing here imports another layer of the project or any heavy library; every rule
about what a valid image record, plan or experiment is lives here.
"""

from medaug.domain.errors import DomainError
from medaug.domain.grades import Grade
from medaug.domain.images import FundusImage, Origin, Provenance, Split
from medaug.domain.plan import AugmentationPlan, PlanPolicy, PolicyKind, SyntheticJob, make_plan

__all__ = [
    "AugmentationPlan",
    "DomainError",
    "FundusImage",
    "Grade",
    "Origin",
    "PlanPolicy",
    "PolicyKind",
    "Provenance",
    "Split",
    "SyntheticJob",
    "make_plan",
]
