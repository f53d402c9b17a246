"""Training metrics of scheduler jobs: raw points, min/max rollups for charts, and a read cursor per job."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from scheduler.models import Job

ROLLUP_BASE = 4  # level L groups steps into buckets of ROLLUP_BASE**L steps
ROLLUP_LEVELS = 12  # 4**12 = 16.7M steps per bucket at the top: enough for any training run
# Levels below this are not stored: a range that needs one spans at most 4 x 2,000 steps, whose raw
# points are summed when read. Level 1 alone would hold three quarters of all bucket rows.
ROLLUP_STORED_FROM = 2


class MetricPoint(models.Model):
    """One logged value: job J's key K at step S (the trainer's global step when it logs one).

    The primary key is (job, key, step, seq), which is also the index every reader uses: a surrogate
    id would be one more index to write per point, the largest cost of ingestion after the series
    index itself. `seq` is the point's place among its key's points in its top-level bucket (4**12
    steps), counted in the order stored, so values logged at one step (a resumed run logs some steps
    again) keep the order they were read in.

    Points and buckets refer to their job without a database constraint, which would be checked for
    every row written (on PostgreSQL, a lookup and a lock of the job row per point at commit). Only
    ingestion writes them, in the transaction that moves the job's read cursor, which keeps its
    constraint; Django deletes them with their job.
    """

    pk = models.CompositePrimaryKey("job", "key", "step", "seq")
    job = models.ForeignKey(
        Job, on_delete=models.CASCADE, related_name="metric_points", db_constraint=False, db_index=False
    )
    key = models.CharField(max_length=200)
    step = models.BigIntegerField()
    seq = models.PositiveIntegerField()
    value = models.FloatField()
    time = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.job_id} {self.key}@{self.step}={self.value}"


class MetricBucket(models.Model):
    """Aggregate of the points of one series in steps [bucket * 4**level, (bucket + 1) * 4**level),
    for levels ROLLUP_STORED_FROM..ROLLUP_LEVELS.

    Kept up to date at ingest, so a chart over any range reads at most ~2,000 of these rows, whatever
    the length of the series. The job as for MetricPoint: no database constraint, and no index of its
    own (the unique constraint's index starts with it).
    """

    job = models.ForeignKey(
        Job, on_delete=models.CASCADE, related_name="+", db_constraint=False, db_index=False
    )
    key = models.CharField(max_length=200)
    level = models.PositiveSmallIntegerField()
    bucket = models.BigIntegerField()
    count = models.PositiveIntegerField()
    total = models.FloatField()
    min_value = models.FloatField()
    max_value = models.FloatField()
    first_step = models.BigIntegerField()
    last_step = models.BigIntegerField()
    last_value = models.FloatField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["job", "key", "level", "bucket"], name="unique_metric_bucket")
        ]

    def __str__(self) -> str:
        return f"{self.job_id} {self.key} L{self.level}#{self.bucket}"


class MetricCursor(models.Model):
    """How far the job's W&B run has been read: the file, the byte offset, the last step stored.

    The offset advances in the same transaction that stores the points, conditional on the old offset,
    so a crash or a second worker never stores a point twice.
    """

    class Source(models.TextChoices):
        FILE = "file", _("Run file on the cluster")
        CLOUD = "cloud", _("W&B cloud")

    job = models.OneToOneField(Job, on_delete=models.CASCADE, primary_key=True, related_name="metric_cursor")
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.FILE)
    path = models.CharField(max_length=600, blank=True)
    offset = models.BigIntegerField(default=0)
    last_step = models.BigIntegerField(null=True, blank=True)
    points = models.BigIntegerField(default=0)
    # For the derived tokens/s series: the previous (tokens seen, time) of the run.
    last_tokens = models.FloatField(null=True, blank=True)
    last_time = models.FloatField(null=True, blank=True)
    exit_code = models.IntegerField(null=True, blank=True)
    final = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.job_id} {self.path}@{self.offset}"
