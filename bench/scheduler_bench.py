"""Scheduler benchmarks on the tests' dev cluster (DEVCLUSTER_INSTANCE=test scripts/devcluster up first;
run as root).

    .venv/bin/python bench/scheduler_bench.py            # writes bench/results/scheduler.{json,md}

1. Remote commands and time per tracking cycle with 1, 100 and 500 tracked jobs.
2. 100 submissions over the persistent connection vs 100 × `ssh host sbatch` (OpenSSH, a new
   connection each) vs `sbatch` run on the login node itself; per-job latency and ratios.
3. One short command over paramiko with and without TCP_NODELAY.
Jobs are submitted held (`--hold`), so they stay pending, use no nodes, and are cancelled at the end.
They run as the member's own cluster user (`tk-u0`, a bench user of the dev cluster; bench/devcluster.py),
over that member's pooled connection; tracking is the service account's.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DB = Path(tempfile.gettempdir()) / "tanuki-bench.sqlite3"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
os.environ["DATABASE_URL"] = f"sqlite:///{DB}"

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402

from bench.devcluster import (  # noqa: E402
    BENCH_USERS,
    SLURM_CONF,
    add_associations,
    cancel_users,
    give_accounts,
    register_cluster,
)
from scheduler import services, slurm, ssh  # noqa: E402
from scheduler.identity import service_connection as connection_for  # noqa: E402
from scheduler.models import Cluster, Job  # noqa: E402
from scheduler.worker import Worker  # noqa: E402
from tests.personas import make_team  # noqa: E402
from tests.scheduler.conftest import STATE_DIR  # noqa: E402 - the tests' instance, never the demo's

RESULTS = ROOT / "bench" / "results"


def setup() -> tuple[Cluster, object]:
    DB.unlink(missing_ok=True)
    call_command("migrate", verbosity=0)
    team = make_team()
    cluster = register_cluster()
    give_accounts(cluster, team.sft, [team.member("member")])  # runs as tk-u0
    add_associations(cluster, Worker(name="bench-setup", pool=ssh.Pool(max_backoff=2.0)))
    return cluster, team


def submit_held(cluster: Cluster, team: object, n: int, worker: Worker) -> list[Job]:
    member = team.member("member")  # type: ignore[attr-defined]
    jobs = []
    for i in range(n):
        job = services.submit_job(
            member,
            services.JobSpec(subteam=team.sft, cluster=cluster, name=f"bench-{i}", command="true"),  # type: ignore[attr-defined]
        )
        job.script = job.script.replace(
            "#SBATCH --open-mode=append", "#SBATCH --open-mode=append\n#SBATCH --hold"
        )
        job.save(update_fields=["script"])
        jobs.append(job)
    while Job.objects.filter(state=Job.State.SUBMITTING).exists():
        worker.cycle()
    return jobs


def cancel_all(conn: ssh.Connection) -> None:
    """The bench's jobs: its member's (tk-u0) and the service account's own (submission latency)."""
    cancel_users(conn, [BENCH_USERS[0], conn.username])


def poll_cost(cluster: Cluster, team: object) -> list[dict[str, float]]:
    worker = Worker(name="bench")
    conn = ssh.pool.connect((cluster.pk, cluster.username), connection_for(cluster))
    rows = []
    tracked = 0
    for target in (1, 100, 500):
        submit_held(cluster, team, target - tracked, worker)
        tracked = target
        worker.cycle()  # settle: squeue has them all now
        commands, times = [], []
        for _ in range(5):
            start = time.perf_counter()
            worker.cycle()
            times.append(time.perf_counter() - start)
            commands.append(worker.last_stats[cluster.pk].commands)
        squeue = []  # the remote part alone: the same squeue over the same pooled connection
        users = [cluster.username, *BENCH_USERS[:1]]
        for _ in range(5):
            start = time.perf_counter()
            conn.run(slurm.squeue_command(users)).check()
            squeue.append(time.perf_counter() - start)
        cycle, remote = statistics.median(times), statistics.median(squeue)
        rows.append(
            {
                "tracked_jobs": Job.objects.filter(state=Job.State.PENDING).count(),
                "commands_per_cycle": max(commands),
                "cycle_seconds_median": round(cycle, 4),
                "squeue_seconds_median": round(remote, 4),
                "portal_seconds_median": round(max(0.0, cycle - remote), 4),
            }
        )
        print(rows[-1])
    cancel_all(conn)
    return rows


def submission_latency(cluster: Cluster, n: int = 100) -> dict[str, float]:
    info = json.loads((STATE_DIR / "cluster.json").read_text())
    conn = ssh.pool.connect((cluster.pk, cluster.username), connection_for(cluster))
    wrap = ["sbatch", "--parsable", "--hold", "--account=sft", "--job-name=bench-latency", "--wrap=true"]

    start = time.perf_counter()
    for _ in range(n):
        conn.run(wrap).check()
    persistent = (time.perf_counter() - start) / n

    with tempfile.NamedTemporaryFile("w", suffix=".known_hosts", delete=False) as known:
        known.write(f"[{info['host']}]:{info['port']} {info['host_key']}\n")
    openssh = [
        "ssh",
        "-i",
        info["key_path"],
        "-p",
        str(info["port"]),
        "-o",
        "BatchMode=yes",
        "-o",
        f"UserKnownHostsFile={known.name}",
        "-o",
        "StrictHostKeyChecking=yes",
        f"{info['username']}@{info['host']}",
        ssh.quote_command(wrap),
    ]
    start = time.perf_counter()
    for _ in range(n):
        subprocess.run(openssh, check=True, capture_output=True)
    fresh = (time.perf_counter() - start) / n

    local_cmd = ["runuser", "-u", info["username"], "--", "env", f"SLURM_CONF={SLURM_CONF}", *wrap]
    start = time.perf_counter()
    for _ in range(n):
        subprocess.run(local_cmd, check=True, capture_output=True)
    local = (time.perf_counter() - start) / n
    cancel_all(conn)
    return {
        "submissions": n,
        "persistent_paramiko_ms": round(persistent * 1000, 2),
        "new_openssh_connection_ms": round(fresh * 1000, 2),
        "sbatch_on_login_node_ms": round(local * 1000, 2),
        "speedup_vs_openssh": round(fresh / persistent, 1),
        "overhead_vs_local_ms": round((persistent - local) * 1000, 2),
    }


def nodelay_effect(cluster: Cluster, n: int = 50) -> dict[str, float]:
    results = {}
    original = socket.socket.setsockopt
    for label, allow in (("with_tcp_nodelay_ms", True), ("without_tcp_nodelay_ms", False)):

        def setsockopt(
            self: socket.socket, level: int, option: int, value: object, _allow: bool = allow
        ) -> None:
            if option == socket.TCP_NODELAY and not _allow:
                return
            original(self, level, option, value)  # type: ignore[arg-type]

        socket.socket.setsockopt = setsockopt  # type: ignore[method-assign,assignment]
        try:
            conn = connection_for(cluster)
            conn.open()
            conn.run(["true"])
            start = time.perf_counter()
            for _ in range(n):
                conn.run(["squeue", "--noheader", "--user", conn.username, "--format", slurm.SQUEUE_FORMAT])
            results[label] = round((time.perf_counter() - start) / n * 1000, 2)
            conn.close()
        finally:
            socket.socket.setsockopt = original  # type: ignore[method-assign]
    return results


def main() -> None:
    cluster, team = setup()
    out = {
        "poll_cost": poll_cost(cluster, team),
        "submission_latency": submission_latency(cluster),
        "tcp_nodelay": nodelay_effect(cluster),
    }
    first, last = out["poll_cost"][0], out["poll_cost"][-1]
    out["cycle_time_ratio_500_vs_1"] = round(last["cycle_seconds_median"] / first["cycle_seconds_median"], 2)
    out["portal_ratio_500_vs_1"] = round(
        last["portal_seconds_median"] / max(first["portal_seconds_median"], 1e-4), 2
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "scheduler.json").write_text(json.dumps(out, indent=2) + "\n")
    lines = [
        "# Scheduler benchmarks (dev cluster, 2 cores)",
        "",
        "## Tracking cost per poll cycle",
        "",
        "| tracked jobs | remote commands per cycle | cycle time (median of 5) | of which squeue on the"
        " login node | the portal's own work |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in out["poll_cost"]:
        lines.append(
            f"| {row['tracked_jobs']} | {row['commands_per_cycle']} | {row['cycle_seconds_median'] * 1000:.0f} ms"
            f" | {row['squeue_seconds_median'] * 1000:.0f} ms | {row['portal_seconds_median'] * 1000:.0f} ms |"
        )
    lines.append(
        f"\nCycle time 500 vs 1 tracked jobs: {out['cycle_time_ratio_500_vs_1']}×; the portal's own work"
        f" (cycle minus squeue): {out['portal_ratio_500_vs_1']}×\n"
    )
    s = out["submission_latency"]
    lines += [
        "## Submission latency (100 sbatch each)",
        "",
        f"- persistent paramiko transport: {s['persistent_paramiko_ms']} ms per job",
        f"- new OpenSSH connection per sbatch: {s['new_openssh_connection_ms']} ms per job "
        f"({s['speedup_vs_openssh']}× slower)",
        f"- sbatch on the login node itself: {s['sbatch_on_login_node_ms']} ms per job "
        f"(persistent SSH adds {s['overhead_vs_local_ms']} ms)",
        "",
        "## One squeue over paramiko",
        "",
        f"- with TCP_NODELAY: {out['tcp_nodelay']['with_tcp_nodelay_ms']} ms",
        f"- without: {out['tcp_nodelay']['without_tcp_nodelay_ms']} ms",
        "",
    ]
    (RESULTS / "scheduler.md").write_text("\n".join(lines))
    print("\n".join(lines))
    DB.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
