"""The dev cluster's fixtures, for the experiments that run on it (test_on_cluster.py)."""

from tests.scheduler.conftest import (  # noqa: F401
    assets,
    cluster,
    devcluster_info,
    judge,
    remote,
    run_until,
    training_cluster,
    worker,
)
