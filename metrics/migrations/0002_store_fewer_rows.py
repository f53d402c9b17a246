"""Fewer rows and indexes written per point:

1. Rollup level 1 is no longer stored (a chart at that level sums the raw points of its range).
2. Buckets refer to their job without a database constraint, and have no index on the job alone (the
   unique index starts with it).
3. Points are keyed by (job, key, step, seq) instead of a surrogate id, likewise without a constraint
   on the job: the table is copied into a new one, `seq` numbering each key's points in each top-level
   bucket (4**12 steps) in step order, then in the order stored.
"""

from itertools import groupby
from typing import Any

import django.db.models.deletion
from django.db import migrations, models

TOP_WIDTH = 4**12

COPY_FORWARD = f"""
INSERT INTO metrics_newmetricpoint (job_id, key, step, seq, value, time)
SELECT job_id, key, step,
    ROW_NUMBER() OVER (PARTITION BY job_id, key, step / {TOP_WIDTH} ORDER BY step, id) - 1,
    value, time
FROM metrics_metricpoint
"""
COPY_BACK = """
INSERT INTO metrics_metricpoint (job_id, key, step, value, time)
SELECT job_id, key, step, value, time FROM metrics_newmetricpoint ORDER BY job_id, key, step, seq
"""


def drop_level_1(apps: Any, schema_editor: Any) -> None:
    bucket = apps.get_model("metrics", "MetricBucket")
    bucket.objects.using(schema_editor.connection.alias).filter(level=1).delete()


def rebuild_level_1(apps: Any, schema_editor: Any) -> None:
    """Level 1 again from the raw points, for the code before this migration, which reads it."""
    point = apps.get_model("metrics", "MetricPoint")
    bucket = apps.get_model("metrics", "MetricBucket")
    alias = schema_editor.connection.alias
    for job_id, key in list(point.objects.using(alias).values_list("job_id", "key").distinct()):
        rows = (
            point.objects.using(alias)
            .filter(job_id=job_id, key=key)
            .order_by("step", "id")
            .values_list("step", "value")
        )
        buckets = []
        for number, group in groupby(rows.iterator(), key=lambda row: row[0] // 4):
            pairs = list(group)
            values = [value for _, value in pairs]
            buckets.append(
                bucket(
                    job_id=job_id,
                    key=key,
                    level=1,
                    bucket=number,
                    count=len(pairs),
                    total=sum(values),
                    min_value=min(values),
                    max_value=max(values),
                    first_step=pairs[0][0],
                    last_step=pairs[-1][0],
                    last_value=pairs[-1][1],
                )
            )
        bucket.objects.using(alias).bulk_create(buckets, batch_size=5000)


class Migration(migrations.Migration):
    dependencies = [
        ("metrics", "0001_initial"),
    ]

    operations = [
        # First, so that undone last it finds the points as they were.
        migrations.RunPython(drop_level_1, rebuild_level_1),
        migrations.AlterField(
            model_name="metricbucket",
            name="job",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="scheduler.job",
            ),
        ),
        migrations.CreateModel(
            name="NewMetricPoint",
            fields=[
                ("pk", models.CompositePrimaryKey("job", "key", "step", "seq", blank=True, editable=False, primary_key=True, serialize=False)),
                (
                    "job",
                    models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="scheduler.job",
                    ),
                ),
                ("key", models.CharField(max_length=200)),
                ("step", models.BigIntegerField()),
                ("seq", models.PositiveIntegerField()),
                ("value", models.FloatField()),
                ("time", models.DateTimeField(blank=True, null=True)),
            ],
        ),
        migrations.RunSQL(COPY_FORWARD, COPY_BACK),
        migrations.DeleteModel(name="MetricPoint"),
        migrations.RenameModel(old_name="NewMetricPoint", new_name="MetricPoint"),
        migrations.AlterField(
            model_name="metricpoint",
            name="job",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="metric_points",
                to="scheduler.job",
            ),
        ),
    ]
