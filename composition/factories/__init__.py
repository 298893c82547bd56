"""The one place that knows concrete adapters: it builds them from Settings, one module per port family.

``stores`` (image stores), ``datasets`` (sources, preprocessing, pseudonyms), ``generators``
(generators and their trainers), ``classifiers`` (trainers, saved classifiers, evaluation),
``quality`` (analyzer, judges, screen) and ``runtime`` (logging, devices, progress, outputs).
Adapters are imported lazily inside the factories, so that ``import medaug`` stays light and nothing
heavy (torch, SDK clients, weights) loads until a service needs it. The names below are the table
the rest of the composition root builds from.
"""

from medaug.composition.factories.classifiers import (
    build_duplicate_finder,
    build_evaluator,
    build_fold_splitter,
    build_saved_classifier,
    build_trainer,
    trainer_names,
)
from medaug.composition.factories.datasets import (
    PUBLISHED_DATASETS,
    build_folder_source,
    build_idrid_source,
    build_phantom_source,
    build_preprocessor,
    build_pseudonymiser,
    build_published_source,
    check_mapping_file,
    cpu_workers,
    write_mapping,
)
from medaug.composition.factories.generators import (
    GENERATOR_TRAINERS,
    build_generator,
    build_generator_trainer,
    generator_dir,
    generator_names,
)
from medaug.composition.factories.quality import (
    build_quality_analyzer,
    build_quality_judges,
    build_screen,
    build_synthetic_screen,
    quality_dir,
    write_quality_outputs,
)
from medaug.composition.factories.runtime import (
    build_progress,
    build_report_writer,
    build_run_folder,
    check_output_file,
    configure_logging,
    describe_device,
    write_contact_sheet,
)
from medaug.composition.factories.stores import (
    build_store,
    working_image_size,
)

__all__ = [
    "GENERATOR_TRAINERS",
    "PUBLISHED_DATASETS",
    "build_duplicate_finder",
    "build_evaluator",
    "build_fold_splitter",
    "build_folder_source",
    "build_generator",
    "build_generator_trainer",
    "build_idrid_source",
    "build_phantom_source",
    "build_preprocessor",
    "build_progress",
    "build_pseudonymiser",
    "build_published_source",
    "build_quality_analyzer",
    "build_quality_judges",
    "build_report_writer",
    "build_run_folder",
    "build_saved_classifier",
    "build_screen",
    "build_store",
    "build_synthetic_screen",
    "build_trainer",
    "check_mapping_file",
    "cpu_workers",
    "check_output_file",
    "configure_logging",
    "describe_device",
    "generator_dir",
    "generator_names",
    "quality_dir",
    "trainer_names",
    "working_image_size",
    "write_contact_sheet",
    "write_mapping",
    "write_quality_outputs",
]
