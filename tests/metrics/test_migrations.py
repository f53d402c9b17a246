"""The migration that stopped storing rollup level 1, both ways, on data stored before it."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from metrics import store
from metrics.models import MetricBucket
from tests.metrics.conftest import MakeJob
from tests.metrics.reference import assert_same_buckets, reference_buckets, stored_buckets

pytestmark = pytest.mark.django_db(transaction=True)  # migrations run outside a test's transaction

BEFORE = ("metrics", "0001_initial")


def test_level_1_is_rebuilt_when_the_migration_is_undone_and_dropped_again_when_it_is_redone(
    make_job: MakeJob,
) -> None:
    job = make_job()
    read = [("k", step, float(step * 7919 % 13)) for step in range(0, 30_000, 3)]
    read += [("k", step, -1.0) for step in range(2000, 2100)]  # a resume that logs some steps again
    store.add_points(job.pk, [store.Point(*point) for point in read])
    charts = [store.series(job.pk, "k", 0, 7000), store.series(job.pk, "k")]  # widths 4 and 16
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes("metrics")
    try:
        executor.migrate([BEFORE])
        level_1 = {bucket: row for bucket, row in stored_buckets(job.pk).items() if bucket[1] == 1}
        assert_same_buckets(level_1, reference_buckets(read, levels=[1]))
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(latest)

    assert not MetricBucket.objects.filter(level=1).exists()
    assert [store.series(job.pk, "k", 0, 7000), store.series(job.pk, "k")] == charts
    assert [chart["width"] for chart in charts] == [4, 16]
