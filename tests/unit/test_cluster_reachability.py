"""A cluster run is refused only when a node could not see the store or the run folder."""

import pytest

from medaug.application.errors import ConfigError
from medaug.application.services.cells import check_reachable


def test_s3_store_and_s3_run_folder_need_no_shared_file_system():
    check_reachable("ray://head:10001", False, "s3://bucket/store", "s3://bucket/work/runs/x")


def test_a_run_folder_that_went_through_path_still_counts_as_s3():
    check_reachable("ray://head:10001", False, "s3://bucket/store", "s3:/bucket/work/runs/x")


@pytest.mark.parametrize(
    ("store", "runs", "named"),
    [("/data/store", "s3://b/runs", "store /data/store"), ("s3://b/store", "/tmp/runs", "run folder /tmp/runs")],
)
def test_a_local_path_on_a_cluster_is_named_in_one_line(store, runs, named):
    with pytest.raises(ConfigError) as error:
        check_reachable("ray://head:10001", False, store, runs)
    assert named in str(error.value) and "\n" not in str(error.value)
