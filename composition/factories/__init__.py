"""The one place that knows concrete adapters: it builds them from Settings, one module per port family.

``stores`` (image stores), ``datasets`` (sources, preprocessing, pseudonyms), ``generators``
(generators and their trainers), ``classifiers`` (trainers, saved classifiers, evaluation),
``quality`` (analyzer, judges, screen) and ``runtime`` (logging, devices, progress, outputs).
Adapters are imported lazily inside the factories, so that ``import medaug`` stays light and nothing
heavy (torch, SDK clients, weights) loads until a service needs it. The names below are the table
the rest of the composition root builds from (re-exported: ruff's F401 is off for this file).
"""

from medaug.composition.factories.classifiers import (
    build_duplicate_finder,
    build_evaluator,
    build_fold_splitter,
    build_saved_classifier,
    build_trainer,
    check_store_size,
    trainer_names,
)
from medaug.composition.factories.datasets import (
    DATASET_KINDS,
    PUBLISHED_DATASETS,
    build_phantom_source,
    build_preprocessor,
    build_pseudonymiser,
    build_source,
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
    discard_run_folder,
    report_writer_for,
    run_folder_location,
    run_environment,
    write_contact_sheet,
)
from medaug.composition.factories.stores import (
    build_store,
    store_image_size,
    working_image_size,
)
