"""Training jobs end to end on the tests' dev cluster's CPU (DEVCLUSTER_INSTANCE=test scripts/devcluster
up first; run as root).

    .venv/bin/python bench/training_jobs_bench.py     # writes bench/results/training_jobs.{json,md}

One pretraining, SFT (full and LoRA), DPO and MT-Bench evaluation job each, from the portal's services
through the worker to `completed`, on the tiny Llama of demo/assets.py, judged by a local
chat-completions server. For each: seconds from submission to Slurm's start (staging, sbatch,
scheduling), Slurm's run time (start to end, incl. Python and torch start-up), and the training's own
seconds from its run_summary.json.
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

from demo import assets as demo_assets  # noqa: E402
from demo.management.commands.register_devcluster import local_python_preamble  # noqa: E402
from scheduler import services, ssh  # noqa: E402
from scheduler.identity import service_connection as connection_for  # noqa: E402
from scheduler.models import Cluster, Job  # noqa: E402
from scheduler.training_jobs import TrainingRequest  # noqa: E402
from scheduler.worker import Worker  # noqa: E402
from tests.judge import API_KEY, JudgeServer  # noqa: E402
from tests.personas import make_team  # noqa: E402
from tests.scheduler.conftest import STATE_DIR  # noqa: E402 - the tests' instance, never the demo's

RESULTS = ROOT / "bench" / "results"
STEPS = 30


def main() -> None:
    DB.unlink(missing_ok=True)
    call_command("migrate", verbosity=0)
    team = make_team()
    info = str(STATE_DIR / "cluster.json")
    call_command("register_devcluster", "--info", info, stdout=open(os.devnull, "w"))  # noqa: SIM115
    cluster = Cluster.objects.get()
    conn = connection_for(cluster)
    assets = demo_assets.stage(conn, f"{cluster.work_dir}/bench-assets")
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
        cluster.env_preamble = local_python_preamble() + f"\nexport OPENAI_API_KEY={API_KEY}"
        cluster.default_account = "sft"
        cluster.save()
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
                judge_base_url=judge.base_url,
                max_new_tokens=16,
                dtype="fp32",
                use_cpu=True,
                wandb_mode="offline",
            ),
        }
        rows = []
        worker = Worker(name="bench")
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
            data = b""
            while chunk := conn.read_from(f"{job.output_dir}/{summary_file}", len(data)):
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
