"""Ports: the interfaces through which application services reach the outside world.

Every port is a ``typing.Protocol`` whose docstring is its contract; each adapter of a port
passes the shared contract suite in ``tests/contracts``. Images cross ports as encoded PNG
bytes (8-bit RGB), so services never touch pixel libraries. One module per feature; this
package re-exports them all.
"""

from medaug.application.ports.classification import (
    ClassifierTrainer,
    Evaluator,
    ExternalTestSet,
    SavedClassifier,
    TrainingOutcome,
    TrainingRequest,
)
from medaug.application.ports.datasets import DatasetSource, Preprocessor, ScanResult, SourceItem
from medaug.application.ports.execution import Executor, Resources, Task, TaskEvent, TaskHandler, check_tasks
from medaug.application.ports.folds import DuplicateFinder, FoldSplitter
from medaug.application.ports.generation import (
    CostEstimate,
    CostEstimating,
    GenerationRequest,
    GenerationResult,
    GeneratorTrainer,
    GeneratorTrainingResult,
    ImageGenerator,
    LabelledImage,
)
from medaug.application.ports.progress import (
    CallbackProgress,
    NullProgress,
    ProgressCallback,
    ProgressSink,
    ProgressTask,
    iter_batches,
)
from medaug.application.ports.quality import QualityAnalyzer, QualityRequest, ScreenVerdict, SyntheticScreen
from medaug.application.ports.reporting import ReportWriter
from medaug.application.ports.storage import ImageStore, MaintainableStore, PngBytes, RunRepository
from medaug.application.ports.tracking import NullTracker, TrackedExperiment, Tracker

__all__ = [
    "ClassifierTrainer",
    "CostEstimate",
    "CostEstimating",
    "DatasetSource",
    "DuplicateFinder",
    "Evaluator",
    "Executor",
    "ExternalTestSet",
    "FoldSplitter",
    "GenerationRequest",
    "GenerationResult",
    "GeneratorTrainer",
    "GeneratorTrainingResult",
    "ImageGenerator",
    "ImageStore",
    "LabelledImage",
    "MaintainableStore",
    "CallbackProgress",
    "NullProgress",
    "ProgressCallback",
    "NullTracker",
    "PngBytes",
    "Preprocessor",
    "ProgressSink",
    "ProgressTask",
    "QualityAnalyzer",
    "QualityRequest",
    "ReportWriter",
    "Resources",
    "RunRepository",
    "SavedClassifier",
    "ScanResult",
    "ScreenVerdict",
    "SourceItem",
    "SyntheticScreen",
    "Task",
    "TaskEvent",
    "TaskHandler",
    "TrackedExperiment",
    "Tracker",
    "TrainingOutcome",
    "TrainingRequest",
    "check_tasks",
    "iter_batches",
]
