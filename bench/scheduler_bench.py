"""Scheduler benchmarks on the tests' dev cluster (DEVCLUSTER_INSTANCE=test scripts/devcluster up first;
run as root).

    .venv/bin/python bench/scheduler_bench.py              # writes bench/results/scheduler.{json,md}
    .venv/bin/python bench/scheduler_bench.py --poll-only  # part 1 alone, printed, nothing written
    .venv/bin/python bench/scheduler_bench.py --profile    # and cProfile of the cycle at 1 and 500 jobs

1. Time per worker cycle with 1, 100 and 500 tracked jobs, the sizes interleaved (`poll_cost`): the
   whole cycle, its squeue over SSH and on the login node, each step; squeue's filter and fields.
2. 100 submissions over the persistent connection vs 100 × `ssh host sbatch` (OpenSSH, a new
   connection each) vs `sbatch` run on the login node itself; per-job latency and ratios.
3. One short command over paramiko with and without TCP_NODELAY.
Jobs are submitted held (`--hold`), so they stay pending, use no nodes, and are cancelled at the end.
They run as the member's own cluster users (`tk-u0` … `tk-u2`, bench users of the dev cluster;
bench/devcluster.py), over that member's pooled connections; tracking is the service account's.
"""

from __future__ import annotations

import cProfile
import json
import os
import pstats
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DB = Path(tempfile.gettempdir()) / "tanuki-bench.sqlite3"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
os.environ["DATABASE_URL"] = f"sqlite:///{DB}"

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.utils import timezone  # noqa: E402

from bench.devcluster import (  # noqa: E402
    BENCH_USERS,
    SLURM_CONF,
    add_associations,
    cancel_users,
    give_accounts,
    machine_note,
    register_cluster,
)
from scheduler import services, slurm, ssh  # noqa: E402
from scheduler.identity import service_connection as connection_for  # noqa: E402
from scheduler.models import Cluster, Job  # noqa: E402
from scheduler.steps import CycleStats, Poll  # noqa: E402
from scheduler.worker import Worker  # noqa: E402
from tests.personas import make_team  # noqa: E402
from tests.scheduler.conftest import STATE_DIR  # noqa: E402 - the tests' instance, never the demo's

RESULTS = ROOT / "bench" / "results"
LATENCY_JOB = "bench-latency"
SIZES = (1, 100, 500)  # tracked jobs
ROUNDS = 100  # measured rounds; each times every size once, in a new random order
WARMUP_ROUNDS = 3


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
    """The bench's jobs: its member's (tk-u0 … tk-u2) and the service account's own (submission
    latency, by their name: a test may have jobs of the service account's queued meanwhile)."""
    conn.run(["scancel", "--user", conn.username, "--name", LATENCY_JOB]).check()
    cancel_users(conn, list(BENCH_USERS[: len(SIZES)]))


def sized_clusters(cluster: Cluster, team: object, worker: Worker) -> dict[int, Cluster]:
    """One cluster row per size, each with its own bench user (`tk-u0` for 1 job, `tk-u1` for 100,
    `tk-u2` for 500; the same member everywhere), so that the sizes can be timed in turn: a row's squeue
    lists only its own user's jobs (and the service account's, which has none). All rows point at the
    one dev cluster."""
    member = team.member("member")  # type: ignore[attr-defined]
    rows = {SIZES[0]: cluster}
    for size, user in zip(SIZES[1:], BENCH_USERS[1:], strict=False):
        row = register_cluster(name=f"{cluster.name}-{size}")
        services.set_subteam_account(None, team.sft, row, "sft")  # type: ignore[attr-defined]
        services.set_cluster_account(None, member, row, user)
        rows[size] = row
    for size, row in rows.items():
        only_active(row)
        add_associations(row, worker)
        submit_held(row, team, size, worker)
        worker.release_claims()
    return rows


def only_active(cluster: Cluster) -> None:
    """The worker's cycle visits this row alone."""
    Cluster.objects.exclude(pk=cluster.pk).update(is_active=False)
    Cluster.objects.filter(pk=cluster.pk).update(is_active=True)


def timed_steps(worker: Worker) -> dict[str, float]:
    """Wrap the worker's per-cluster steps so that each cycle records the seconds each step took."""
    took: dict[str, float] = {}

    def timed(path: str, step: Callable[[Poll], None]) -> Callable[[Poll], None]:
        def run(poll: Poll) -> None:
            start = time.perf_counter()
            try:
                step(poll)
            finally:
                took[path.rpartition(".")[2]] = time.perf_counter() - start

        return run

    worker.cluster_steps = [(path, timed(path, step)) for path, step in worker.cluster_steps]
    return took


def spread(values: list[float]) -> dict[str, float]:
    """Median and quartiles (p25, p75), in milliseconds."""
    p25, p50, p75 = statistics.quantiles(values, n=4, method="inclusive")
    return {"median_ms": round(p50 * 1000, 2), "p25_ms": round(p25 * 1000, 2), "p75_ms": round(p75 * 1000, 2)}


def on_login_node(command: list[str], user: str) -> list[str]:
    """A command as `user` on this machine itself (the dev cluster's login node): no SSH."""
    return ["runuser", "-u", user, "--", "env", f"SLURM_CONF={SLURM_CONF}", *command]


def poll_cost(rows: dict[int, Cluster], rounds: int = ROUNDS) -> dict[str, Any]:
    """Cycle time per size, the sizes interleaved: each round times one cycle of every size, in a
    random order, each followed by the cycle's squeue alone over the same pooled connection and on the
    login node itself (no SSH). The inventory is kept fresh so that no cycle refreshes it (a timed cycle
    runs squeue alone); a cycle that ran any other remote command is left out (counted in `left_out`).
    The portal's own work is each cycle minus the squeue timed right after it; its CPU time is the
    process's (all threads: the SSH transport's too), which other work on the machine changes less."""
    worker = Worker(name="bench")
    took = timed_steps(worker)
    conns = {
        size: ssh.pool.connect((row.pk, row.username), connection_for(row)) for size, row in rows.items()
    }
    squeue = {  # the command the cycle runs
        size: Poll(row, conns[size], worker.name, CycleStats(row.name)).squeue_command()
        for size, row in rows.items()
    }
    series: dict[str, dict[int, list[float]]] = {
        name: {size: [] for size in rows} for name in ("cycle", "squeue", "login_node", "portal", "cpu")
    }
    steps: dict[int, dict[str, list[float]]] = {size: {} for size in rows}
    ratios: list[float] = []
    left_out = dict.fromkeys(rows, 0)
    order = list(rows)
    for number in range(WARMUP_ROUNDS + rounds):
        random.shuffle(order)
        measured: dict[int, float] = {}
        for size in order:
            row = rows[size]
            only_active(row)
            Cluster.objects.filter(pk=row.pk).update(inventory_at=timezone.now())
            start, cpu_start = time.perf_counter(), time.process_time()
            worker.cycle()
            cycle, cpu = time.perf_counter() - start, time.process_time() - cpu_start
            stats = worker.last_stats[row.pk]
            start = time.perf_counter()
            conns[size].run(squeue[size]).check()
            remote = time.perf_counter() - start
            start = time.perf_counter()
            subprocess.run(on_login_node(squeue[size], row.username), check=True, capture_output=True)
            local = time.perf_counter() - start
            if number < WARMUP_ROUNDS:
                continue
            if stats.commands != 1 or stats.errors or stats.tracked != size:
                left_out[size] += 1
                continue
            for name, value in (("cycle", cycle), ("squeue", remote), ("login_node", local), ("cpu", cpu)):
                series[name][size].append(value)
            series["portal"][size].append(cycle - remote)
            measured[size] = cycle
            for name, seconds in took.items():
                steps[size].setdefault(name, []).append(seconds)
        if SIZES[0] in measured and SIZES[-1] in measured:
            ratios.append(measured[SIZES[-1]] / measured[SIZES[0]])
    worker.release_claims()
    sizes: list[dict[str, Any]] = []
    for size in rows:
        sizes.append(
            {
                "tracked_jobs": size,
                "cycles": len(series["cycle"][size]),
                "left_out": left_out[size],
                **{name: spread(values[size]) for name, values in series.items()},
                "steps_median_ms": {
                    name: round(statistics.median(values) * 1000, 2) for name, values in steps[size].items()
                },
            }
        )
        print(sizes[-1])
    first, last = sizes[0], sizes[-1]
    p25, p50, p75 = statistics.quantiles(ratios, n=4, method="inclusive")
    return {
        "rounds": rounds,
        "sizes": sizes,
        "cycle_ratio_of_medians": round(last["cycle"]["median_ms"] / first["cycle"]["median_ms"], 2),
        "cycle_ratio_per_round": {"median": round(p50, 2), "p25": round(p25, 2), "p75": round(p75, 2)},
        "portal_ratio_of_medians": round(last["portal"]["median_ms"] / first["portal"]["median_ms"], 2),
        "cpu_ratio_of_medians": round(last["cpu"]["median_ms"] / first["cpu"]["median_ms"], 2),
    }


def squeue_variants(row: Cluster, rounds: int = ROUNDS) -> dict[str, dict[str, Any]]:
    """At the largest size: squeue as the cycle runs it (`--user`, every field) against the same jobs
    asked for by id (`--jobs`) and against fewer fields (id, state, reason, nodes, start), over the same
    pooled connection, in a random order each round."""
    conn = ssh.pool.connect((row.pk, row.username), connection_for(row))
    users = Poll(row, conn, "bench", CycleStats(row.name)).squeue_command()
    ids = ",".join(Job.objects.filter(cluster=row).values_list("slurm_job_id", flat=True))
    by_jobs = [*users[: users.index("--user")], "--jobs", ids, *users[users.index("--user") + 2 :]]
    fewer = [*users[:-1], "%i|%T|%r|%N|%S"]
    commands = {"--user (the cycle's)": users, "--jobs (500 ids)": by_jobs, "--user, 5 fields": fewer}
    times: dict[str, list[float]] = {name: [] for name in commands}
    sizes: dict[str, int] = {}
    names = list(commands)
    for number in range(WARMUP_ROUNDS + rounds):
        random.shuffle(names)
        for name in names:
            start = time.perf_counter()
            output = conn.run(commands[name]).check().stdout
            if number >= WARMUP_ROUNDS:
                times[name].append(time.perf_counter() - start)
            sizes[name] = len(output.encode())
    return {name: {"bytes": sizes[name], **spread(times[name])} for name in commands}


def profile_cycles(rows: dict[int, Cluster], cycles: int = 30, top: int = 30) -> None:
    """cProfile over `cycles` cycles of the smallest and the largest size: the functions by own time."""
    worker = Worker(name="bench-profile")
    for size in (SIZES[0], SIZES[-1]):
        row = rows[size]
        only_active(row)
        worker.cycle()
        profiler = cProfile.Profile()
        for _ in range(cycles):
            Cluster.objects.filter(pk=row.pk).update(inventory_at=timezone.now())
            profiler.enable()
            worker.cycle()
            profiler.disable()
        print(f"\n=== {size} tracked jobs, {cycles} cycles ===")
        pstats.Stats(profiler).sort_stats("tottime").print_stats(top)
    worker.release_claims()


def submission_latency(cluster: Cluster, n: int = 100) -> dict[str, float]:
    info = json.loads((STATE_DIR / "cluster.json").read_text())
    conn = ssh.pool.connect((cluster.pk, cluster.username), connection_for(cluster))
    wrap = ["sbatch", "--parsable", "--hold", "--account=sft", f"--job-name={LATENCY_JOB}", "--wrap=true"]

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


def poll_cost_lines(poll: dict[str, Any], variants: dict[str, dict[str, Any]], note: str) -> list[str]:
    def ms(spread: dict[str, float]) -> str:
        return f"{spread['median_ms']:.1f} ms ({spread['p25_ms']:.1f}-{spread['p75_ms']:.1f})"

    lines = [
        "## Tracking cost per poll cycle",
        "",
        f"Method: {len(SIZES)} cluster rows on the one dev cluster, one per size, each its own cluster user"
        f" with that many held jobs (pending, no nodes). After {WARMUP_ROUNDS} warm-up rounds,"
        f" {poll['rounds']} rounds each time one whole `Worker.cycle()` of every size, the sizes in a new"
        " random order each round (so drifts in the machine's load hit them alike), each cycle followed"
        " by the same squeue alone over the same pooled connection, and run on the login node itself"
        " (`runuser`, no SSH; includes starting the process). The inventory is kept fresh, so a timed"
        " cycle runs squeue as its one remote command; cycles that ran another (the associations'"
        " 10-minute check) are left out. The portal's own work is each cycle minus the squeue timed"
        " right after it; its CPU time is the portal process's during the cycle (all its threads, the"
        " SSH transport's included), which the machine's other work disturbs less than wall time."
        " Figures are medians with the interquartile range (p25-p75) in brackets."
        f" The dev cluster's daemons run on the same machine, which other work shared: {note}.",
        "",
        "| tracked jobs | cycles timed | cycle time | squeue over SSH | squeue on the login node |"
        " the portal's own work (cycle − squeue) | the portal's CPU time | `track_jobs` (with its squeue) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in poll["sizes"]:
        lines.append(
            f"| {row['tracked_jobs']} | {row['cycles']} | {ms(row['cycle'])} | {ms(row['squeue'])} |"
            f" {ms(row['login_node'])} | {ms(row['portal'])} | {ms(row['cpu'])} |"
            f" {row['steps_median_ms'].get('track_jobs', 0):.1f} ms |"
        )
    per_round = poll["cycle_ratio_per_round"]
    lines += [
        "",
        f"Cycle time {SIZES[-1]} vs {SIZES[0]} tracked jobs: **{poll['cycle_ratio_of_medians']}×** (ratio of"
        f" the medians); the ratio within each round: median {per_round['median']}×, p25-p75"
        f" {per_round['p25']}-{per_round['p75']}×. The portal's own work: {poll['portal_ratio_of_medians']}×;"
        f" its CPU time: {poll['cpu_ratio_of_medians']}×.",
        "",
        "Median time of each step of the cycle (ms; `track_jobs` includes the squeue round trip):",
        "",
        "| step | " + " | ".join(f"{row['tracked_jobs']} jobs" for row in poll["sizes"]) + " |",
        "| --- |" + " ---: |" * len(SIZES),
    ]
    names = list(poll["sizes"][0]["steps_median_ms"])
    for name in names:
        cells = " | ".join(f"{row['steps_median_ms'][name]:.2f}" for row in poll["sizes"])
        lines.append(f"| `{name}` | {cells} |")
    lines += [
        "",
        f"squeue at {SIZES[-1]} jobs, over SSH, the variants in a random order each round:",
        "",
        "| squeue | output | time |",
        "| --- | ---: | ---: |",
    ]
    for name, row in variants.items():
        lines.append(f"| {name} | {row['bytes'] / 1024:.0f} KiB | {ms(row)} |")
    return [*lines, ""]


def main() -> None:
    """`--poll-only`: the tracking cost alone, printed, nothing written; `--profile`: first cProfile
    cycles of the smallest and the largest size."""
    args = set(sys.argv[1:])
    note = machine_note()
    cluster, team = setup()
    conn = ssh.pool.connect((cluster.pk, cluster.username), connection_for(cluster))
    try:
        rows = sized_clusters(cluster, team, Worker(name="bench-submit"))
        if "--profile" in args:
            profile_cycles(rows)
        poll = poll_cost(rows)
        variants = squeue_variants(rows[SIZES[-1]])
    finally:
        cancel_all(conn)
    only_active(cluster)
    lines = ["# Scheduler benchmarks (dev cluster)", "", *poll_cost_lines(poll, variants, note)]
    if "--poll-only" in args:
        print("\n".join(lines))
        DB.unlink(missing_ok=True)
        return
    out = {
        "poll_cost": poll,
        "squeue_variants": variants,
        "submission_latency": submission_latency(cluster),
        "tcp_nodelay": nodelay_effect(cluster),
    }
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
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "scheduler.json").write_text(json.dumps(out, indent=2) + "\n")
    (RESULTS / "scheduler.md").write_text("\n".join(lines))
    print("\n".join(lines))
    DB.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
