"""The metric keys the portal gives a meaning to, and what it reads from a job's run config and the
settings. Imports nothing of metrics: sources, ingestion and progress all read it.
"""

from __future__ import annotations

from django.conf import settings

from scheduler.models import Job

STEP_KEY = "train/global_step"  # the trainer's optimizer step: points are stored at this step
TOKENS_KEY = "train/num_input_tokens_seen"
TOKENS_PER_S_KEY = "perf/tokens_per_s"  # derived at ingestion from TOKENS_KEY (or the step) over time

MAX_RECORD_BYTES = 64 << 20  # a run-file read grows up to this to take in one large record
MAX_CHUNK_BYTES = 16 << 20  # a run that is behind is read in chunks growing up to this (one transaction each)
MIN_CHUNK_BYTES = 256 << 10  # less than this left to read in a cycle's time: not worth a transaction


def read_bytes() -> int:
    """Bytes of a run file read first per job per cycle, the first chunk of a catch-up (setting
    METRICS_READ_BYTES, default 4 MiB)."""
    return int(getattr(settings, "METRICS_READ_BYTES", 4 << 20))


def seconds_per_cycle() -> float:
    """How long one cluster's visit may go on reading runs that are behind (setting
    METRICS_INGEST_SECONDS_PER_CYCLE, default 2 s): each job gets its first read whatever the time,
    further chunks only while time is left."""
    return float(getattr(settings, "METRICS_INGEST_SECONDS_PER_CYCLE", 2.0))


def training_config(job: Job) -> dict[str, object]:
    """The `training:` section of the job's run config (job.parameters["config"]), or {}."""
    config = job.parameters.get("config") if isinstance(job.parameters, dict) else None
    training = config.get("training") if isinstance(config, dict) else None
    return training if isinstance(training, dict) else {}


def max_steps(job: Job) -> int | None:
    value = training_config(job).get("max_steps")
    return value if isinstance(value, int) and value > 0 else None


def tokens_per_step(job: Job) -> float | None:
    """Tokens per optimizer step from the run config (an upper bound: padding counts), or None."""
    training = training_config(job)
    total = 1
    for key in ("micro_batch_size", "gradient_accumulation_steps", "max_length"):
        factor = training.get(key)
        if not isinstance(factor, int) or factor <= 0:
            return None
        total *= factor
    return float(total * max(1, job.nodes * job.gpus_per_node))
