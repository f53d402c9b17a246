"""Training jobs end to end on the tests' dev cluster's CPU (DEVCLUSTER_INSTANCE=test scripts/devcluster
up first; run as root).

    .venv/bin/python bench/training_jobs_bench.py     # writes bench/results/training_jobs.{json,md}

One pretraining, SFT (full and LoRA), DPO and MT-Bench evaluation job each, from the portal's services
through the worker to `completed`, on the tiny Llama of demo/assets.py, judged by a local
chat-completions server. For each: seconds from submission to Slurm's start (staging, sbatch,
scheduling), Slurm's run time (start to end, incl. Python and torch start-up), and the training's own
seconds from its run_summary.json. The jobs run as the member's own cluster user (`tk-u0`, a bench user
of the dev cluster; bench/devcluster.py); the judge is an admin's endpoint whose key the portal host
holds in an environment variable and stages for the evaluation as a file only its user reads.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DB = Path(tempfile.gettempdir()) / "tanuki-bench-training.sqlite3"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
os.environ["DATABASE_URL"] = f"sqlite:///{DB}"

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402

from bench.devcluster import add_associations, cluster_info, give_accounts, register_cluster  # noqa: E402
from demo import assets as demo_assets  # noqa: E402
from demo.management.commands.register_devcluster import (  # noqa: E402
    allow_local_python,
    local_python_preamble,
)
from scheduler import identity, services, ssh  # noqa: E402
from scheduler.identity import service_connection as connection_for  # noqa: E402
from scheduler.models import Job, JudgeEndpoint  # noqa: E402
from scheduler.training_jobs import TrainingRequest  # noqa: E402
from scheduler.worker import Worker  # noqa: E402
from tests.judge import API_KEY, JudgeServer  # noqa: E402
from tests.personas import make_team  # noqa: E402

RESULTS = ROOT / "bench" / "results"
STEPS = 30
JUDGE_NAME = "bench-judge"
JUDGE_KEY_ENV = "TANUKI_BENCH_JUDGE_KEY"  # read on the portal host; never in the preamble or database


def main() -> None:
    DB.unlink(missing_ok=True)
    call_command("migrate", verbosity=0)
    team = make_team()
    allow_local_python()  # the jobs' users run this Python and read this checkout
    cluster = register_cluster(env_preamble=local_python_preamble())
    give_accounts(cluster, team.sft, [team.member("member")])  # runs as tk-u0
    worker = Worker(name="bench")
    add_associations(cluster, worker)
    conn = connection_for(cluster)
    # The members' group reads the shared directory; each member's run directory is theirs alone.
    assets = demo_assets.stage(conn, f"{cluster_info()['shared_dir']}/bench-assets-{os.getpid()}")
    tiny: dict[str, Any] = {
        "model": assets.model,
        "learning_rate": 5e-3,
        "max_steps": STEPS,
        "micro_batch_size": 4,
        "max_length": 64,
        "dtype": "fp32",
        "use_cpu": True,
        "wandb_mode": "offline",
        "save_steps": 1000,
    }
    with JudgeServer() as judge:
        os.environ[JUDGE_KEY_ENV] = API_KEY
        JudgeEndpoint.objects.create(name=JUDGE_NAME, base_url=judge.base_url, key_env=JUDGE_KEY_ENV)
        requests = {
            "pretrain": TrainingRequest(kind="pretrain", train_files=[assets.pretrain_data], **tiny),
            "sft": TrainingRequest(kind="sft", train_files=[assets.sft_data], **tiny),
            "sft-lora": TrainingRequest(kind="sft", train_files=[assets.sft_data], lora=True, **tiny),
            "dpo": TrainingRequest(
                kind="dpo", train_files=[assets.dpo_data], **{**tiny, "micro_batch_size": 2}
            ),
            "eval": TrainingRequest(
                kind="eval",
                model=assets.model,
                questions=assets.questions,
                judge_model="judge-x",
                judge_endpoint=JUDGE_NAME,
                max_new_tokens=16,
                dtype="fp32",
                use_cpu=True,
                wandb_mode="offline",
            ),
        }
        rows = []
        for label, request in requests.items():
            submitted = time.monotonic()
            job = services.submit_job(
                team.member("member"),
                services.JobSpec(
                    subteam=team.sft,
                    cluster=cluster,
                    name=f"bench-{label}",
                    command="",
                    kind=request.kind,
                    training=request,
                    time_limit_minutes=15,
                ),
            )
            while not Job.objects.get(pk=job.pk).is_terminal:
                worker.cycle()
                time.sleep(0.5)
            seen = time.monotonic() - submitted
            job.refresh_from_db()
            assert job.state == Job.State.COMPLETED, (label, job.state, job.reason)
            assert job.started_at and job.ended_at and job.created_at
            summary_file = "summary.json" if request.kind == "eval" else "run_summary.json"
            own_conn = identity.connect_user(cluster, job.cluster_user, worker.pool)  # run dir is 0700
            data = b""
            while chunk := own_conn.read_from(f"{job.output_dir}/{summary_file}", len(data)):
                data += chunk
            summary = json.loads(data)
            own = summary["seconds"]["total"] if request.kind == "eval" else summary["seconds"]
            rows.append(
                {
                    "job": label,
                    "to_start_s": round((job.started_at - job.created_at).total_seconds(), 1),
                    "slurm_run_s": round((job.ended_at - job.started_at).total_seconds(), 1),
                    "training_s": round(float(own), 2) if own else None,
                    "seen_completed_s": round(seen, 1),
                }
            )
            print(rows[-1], flush=True)
    conn.run(["rm", "-rf", "--", assets.root])
    ssh.pool.close_all()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "training_jobs.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = [
        "# Training jobs on the dev cluster (CPU, tiny Llama)",
        "",
        f"`python bench/training_jobs_bench.py`: one job each, {STEPS} steps (eval: 8 questions, 10 turns, local judge),",
        "2-core machine, 4 slurmd on it. Seconds.",
        "",
        "| job | submit → Slurm start | Slurm start → end | training itself | submit → seen completed |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['job']} | {row['to_start_s']} | {row['slurm_run_s']} | {row['training_s']} | {row['seen_completed_s']} |"
        )
    (RESULTS / "training_jobs.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
