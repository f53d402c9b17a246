"""Identity benchmarks on the tests' dev cluster: each member's job runs as their own cluster user
(DEVCLUSTER_INSTANCE=test scripts/devcluster up first; run as root).

    .venv/bin/python bench/identity_bench.py            # writes bench/results/identity.md
    .venv/bin/python bench/identity_bench.py --jobs 20 --repeats 1 --tracked 1,20   # a quick check

Ten members u0 … u9, each the cluster user tk-u0 … tk-u9 (bench/devcluster.py), all in one subteam
mapped to the Slurm account `sft`; their associations are added by one worker cycle first.

1. Submission: 100 jobs (`sleep 30`, 1 GPU) spread over the 10 members vs 100 by one member; seconds
   from `submit_job` of the first until all have a Slurm id (pending or running), driving
   `Worker.cycle()` in a loop with a fresh connection pool each time (so the 10 members' logins, each
   a new certificate, are counted); 3 runs of each, alternated. Between runs every job of the bench
   users is cancelled through the service account and the queue drained.
2. Tracking: remote commands, SFTP operations and time of one cycle with 1, 100 and 500 tracked jobs
   over the 10 users: (a) jobs really queued in Slurm, held (`--hold`: pending, no node used), so
   squeue lists them; (b) rows only, pending with fake Slurm ids that squeue does not list, so every
   cycle also asks sacct about all of them (the most tracking can cost).
3. Certificates: a key pair made and a certificate signed (`ssh.Certificate.load()`), a fresh login with
   one, and a command over an open pooled connection.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DB = Path(tempfile.gettempdir()) / "tanuki-identity-bench.sqlite3"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
os.environ["DATABASE_URL"] = f"sqlite:///{DB}"

import django  # noqa: E402

django.setup()

from cryptography.hazmat.primitives.asymmetric import ed25519  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.utils import timezone  # noqa: E402

from bench.devcluster import (  # noqa: E402
    add_associations,
    cancel_users,
    cluster_info,
    give_accounts,
    machine_note,
    register_cluster,
)
from portal.models import Member, Membership, Subteam  # noqa: E402
from scheduler import associations, services, ssh  # noqa: E402
from scheduler.identity import connect_service  # noqa: E402
from scheduler.models import Cluster, Job  # noqa: E402
from scheduler.worker import Worker  # noqa: E402
from tests.personas import make_user  # noqa: E402

RESULTS = ROOT / "bench" / "results"
FAKE_IDS_FROM = 90_000_000  # far above the dev cluster's own ids: sacct knows none of them

# Every certificate signed and every SSH login made in this process (workers' pools included).
COUNTS = {"certificates": 0, "logins": 0}
_sign = ssh.sign_certificate
_open = ssh.Connection.open


def _counting_sign(*args: Any, **kwargs: Any) -> str:
    COUNTS["certificates"] += 1
    return _sign(*args, **kwargs)


def _counting_open(self: ssh.Connection) -> None:
    if not self.is_open:
        COUNTS["logins"] += 1
    _open(self)


ssh.sign_certificate = _counting_sign
ssh.Connection.open = _counting_open  # type: ignore[method-assign]


class Bench:
    def __init__(self) -> None:
        DB.unlink(missing_ok=True)
        call_command("migrate", verbosity=0)
        self.subteam = Subteam.objects.create(name="Bench", slug="bench")
        self.members: list[Member] = []
        for i in range(10):
            member = make_user(f"u{i}").member
            Membership.objects.create(
                member=member, subteam=self.subteam, role="member", started=dt.date(2024, 6, 1)
            )
            self.members.append(member)
        self.cluster = register_cluster()
        self.users = give_accounts(self.cluster, self.subteam, self.members, "sft")
        self.service_pool = ssh.Pool(max_backoff=2.0)
        add_associations(self.cluster, Worker(name="identity-setup", pool=self.service_pool))
        self.service = connect_service(self.cluster, self.service_pool)
        cancel_users(self.service, self.users)  # nothing of an earlier run left

    def fresh_inventory(self) -> None:
        """Inventory (sinfo, every 30 s) and the association re-check (every 10 min) are not what is
        measured: both are made current before a measured cycle."""
        now = timezone.now()
        Cluster.objects.filter(pk=self.cluster.pk).update(inventory_at=now)
        associations._last_check[self.cluster.pk] = now

    def spec(self, i: int, command: str) -> services.JobSpec:
        return services.JobSpec(
            subteam=self.subteam,
            cluster=self.cluster,
            name=f"bench-{i}",
            command=command,
            gpus_per_node=1,
            time_limit_minutes=10,
        )

    def finish(self, ids: Sequence[object]) -> float:
        """Cancel every job of the bench users and wait for an empty queue; the rows are then marked
        cancelled (their end is not what is measured). Seconds waited."""
        waited = cancel_users(self.service, self.users)
        Job.objects.filter(pk__in=ids).update(
            state=Job.State.CANCELLED, ended_at=timezone.now(), logs_final=True
        )
        return waited

    # --- 1. submission ------------------------------------------------------------------------------

    def submission(self, members: Sequence[Member], n: int) -> dict[str, Any]:
        self.fresh_inventory()
        pool = ssh.Pool(max_backoff=2.0)
        worker = Worker(name=f"identity-{len(members)}", pool=pool)
        counts = dict(COUNTS)
        began = time.perf_counter()
        ids = [services.submit_job(members[i % len(members)], self.spec(i, "sleep 30")).pk for i in range(n)]
        queued_at = time.perf_counter()
        cycles = commands = sftp = 0
        deadline = time.monotonic() + 300
        while Job.objects.filter(pk__in=ids, slurm_job_id="").exists():
            if time.monotonic() > deadline:
                raise RuntimeError("submissions not done in 5 minutes")
            worker.cycle()
            cycles += 1
            commands += worker.last_stats[self.cluster.pk].commands
            sftp += worker.last_stats[self.cluster.pk].sftp_ops
        wall = time.perf_counter() - began
        states = Counter(Job.objects.filter(pk__in=ids).values_list("state", flat=True))
        if set(states) - {Job.State.PENDING, Job.State.RUNNING}:
            reasons = set(Job.objects.filter(pk__in=ids).values_list("reason", flat=True))
            raise RuntimeError(f"not all queued: {dict(states)} {reasons}")
        row = {
            "members": len(members),
            "jobs": n,
            "wall_s": wall,
            "submit_job_s": queued_at - began,
            "cycles": cycles,
            "commands": commands,
            "sftp_ops": sftp,
            "pool_size": pool.size,
            "logins": COUNTS["logins"] - counts["logins"],
            "certificates": COUNTS["certificates"] - counts["certificates"],
            "states": dict(states),
        }
        worker.release_claims()
        pool.close_all()
        row["drain_s"] = self.finish(ids)
        print({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}, flush=True)
        return row

    # --- 2. tracking --------------------------------------------------------------------------------

    def measure_cycles(self, worker: Worker, repeat: int = 5) -> dict[str, Any]:
        worker.cycle()  # settle (anything still to say about the jobs is said)
        commands, sftp, times = [], [], []
        for _ in range(repeat):
            self.fresh_inventory()
            began = time.perf_counter()
            worker.cycle()
            times.append(time.perf_counter() - began)
            stats = worker.last_stats[self.cluster.pk]
            commands.append(stats.commands)
            sftp.append(stats.sftp_ops)
        return {
            "tracked": worker.last_stats[self.cluster.pk].tracked,
            "users": Job.objects.filter(state__in=[Job.State.PENDING, Job.State.RUNNING])
            .values("cluster_user")
            .distinct()
            .count(),
            "commands": max(commands),
            "sftp_ops": max(sftp),
            "cycle_ms": statistics.median(times) * 1000,
        }

    def tracking_held(self, levels: Sequence[int]) -> list[dict[str, Any]]:
        """Held jobs really in Slurm, submitted through the worker as their members."""
        pool = ssh.Pool(max_backoff=2.0)
        worker = Worker(name="identity-track", pool=pool)
        ids: list[object] = []
        rows = []
        for level in levels:
            for i in range(len(ids), level):
                job = services.submit_job(self.members[i % len(self.members)], self.spec(i, "true"))
                job.script = job.script.replace(
                    "#SBATCH --open-mode=append", "#SBATCH --open-mode=append\n#SBATCH --hold"
                )
                job.save(update_fields=["script"])
                ids.append(job.pk)
            while Job.objects.filter(pk__in=ids, state=Job.State.SUBMITTING).exists():
                worker.cycle()
            rows.append(self.measure_cycles(worker))
            print("held", rows[-1], flush=True)
        worker.release_claims()
        pool.close_all()
        self.finish(ids)
        return rows

    def tracking_rows(self, levels: Sequence[int]) -> list[dict[str, Any]]:
        """Rows only: pending jobs with fake Slurm ids, none in squeue or sacct."""
        pool = ssh.Pool(max_backoff=2.0)
        worker = Worker(name="identity-rows", pool=pool)
        ids: list[object] = []
        rows = []
        now = timezone.now()
        for level in levels:
            new = []
            for i in range(len(ids), level):
                job = services.build_job(self.members[i % len(self.members)], self.spec(i, "true"))
                job.state = Job.State.PENDING
                job.slurm_job_id = str(FAKE_IDS_FROM + i)
                job.submitted_at = now
                new.append(job)
            ids += [job.pk for job in Job.objects.bulk_create(new)]
            rows.append(self.measure_cycles(worker))
            print("rows", rows[-1], flush=True)
        worker.release_claims()
        pool.close_all()
        Job.objects.filter(pk__in=ids).update(state=Job.State.CANCELLED, logs_final=True)
        return rows

    # --- 3. certificates ----------------------------------------------------------------------------

    def certificates(self, signs: int = 200, logins: int = 10, round_trips: int = 50) -> dict[str, float]:
        info = cluster_info()
        ca_path = Path(info["ca_key_path"])

        def mean_us(fn: Callable[[], object], n: int) -> float:
            began = time.perf_counter()
            for _ in range(n):
                fn()
            return (time.perf_counter() - began) / n * 1e6

        load = mean_us(lambda: ssh.Certificate(ca_path, "tk-u0").load(), signs)
        ca = ssh.load_certificate_authority(ca_path)
        key = ed25519.Ed25519PrivateKey.generate().public_key()
        sign_only = mean_us(lambda: ssh.sign_certificate(ca, key, "tk-u0", 300.0), signs)

        def connection(credential: ssh.Credential | None) -> ssh.Connection:
            return ssh.Connection(
                host=info["host"],
                port=int(info["port"]),
                username="tk-u0" if credential else info["username"],
                key_path=None if credential else Path(info["key_path"]),
                host_key=info["host_key"],
                credential=credential,
            )

        def login_ms(credential: ssh.Credential | None) -> tuple[float, float]:
            """(open, open + first command) medians, ms."""
            opens, firsts = [], []
            for _ in range(logins):
                conn = connection(credential)
                began = time.perf_counter()
                conn.open()
                opened = time.perf_counter()
                conn.run(["true"]).check()
                done = time.perf_counter()
                conn.close()
                opens.append((opened - began) * 1000)
                firsts.append((done - began) * 1000)
            return statistics.median(opens), statistics.median(firsts)

        cert_open, cert_first = login_ms(ssh.Certificate(ca_path, "tk-u0"))
        key_open, key_first = login_ms(None)
        pooled = connection(ssh.Certificate(ca_path, "tk-u0"))
        pooled.open()
        pooled.run(["true"]).check()
        trips = []
        for _ in range(round_trips):
            began = time.perf_counter()
            pooled.run(["true"]).check()
            trips.append((time.perf_counter() - began) * 1000)
        pooled.close()
        out = {
            "certificate_load_us": load,
            "sign_only_us": sign_only,
            "certificate_login_ms": cert_open,
            "certificate_login_and_command_ms": cert_first,
            "key_login_ms": key_open,
            "key_login_and_command_ms": key_first,
            "pooled_command_ms": statistics.median(trips),
        }
        print({k: round(v, 2) for k, v in out.items()}, flush=True)
        return out


def report(
    note: str,
    jobs: int,
    runs: dict[str, list[dict[str, Any]]],
    held: list[dict[str, Any]],
    rows: list[dict[str, Any]],
    certs: dict[str, float],
) -> list[str]:
    single = statistics.median(r["wall_s"] for r in runs["one"])
    spread = statistics.median(r["wall_s"] for r in runs["ten"])
    lines = [
        "# Identity benchmarks (members' own cluster users, dev cluster)",
        "",
        f"`python bench/identity_bench.py`, run {timezone.now():%Y-%m-%d %H:%M} UTC on the dev machine "
        f"({note}; the dev cluster's slurmctld, 4 slurmd and sshd on it too).",
        "",
        f"## Submission: {jobs} jobs (`sleep 30`, 1 GPU each) until all have a Slurm id",
        "",
        "From `submit_job` of the first to the last Slurm id, driving `Worker.cycle()` in a loop; a fresh "
        "connection pool each run.",
        "",
        "| submitted by | run | wall | of which submit_job | cycles | remote commands | SSH logins "
        "| pool size | certificates signed | queued as |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for label, key in (("1 member", "one"), ("10 members", "ten")):
        for n, r in enumerate(runs[key], 1):
            queued_as = ", ".join(f"{count} {state}" for state, count in sorted(r["states"].items()))
            lines.append(
                f"| {label} | {n} | {r['wall_s']:.2f} s | {r['submit_job_s']:.2f} s | {r['cycles']} | "
                f"{r['commands']} | {r['logins']} | {r['pool_size']} | {r['certificates']} | {queued_as} |"
            )
    lines += [
        "",
        f"Median wall: 1 member {single:.2f} s, 10 members {spread:.2f} s: **{spread / single:.2f}×** "
        "(target ≤ 1.5×).",
        "SSH logins and pool size include the service account's connection (tracking); each member's "
        "login is one certificate. Remote commands: one squeue, one `umask; mkdir; chmod; sbatch` per job "
        "as its member, one sacct (the visit's squeue was read before the jobs were submitted, so the "
        "tracking step asks sacct about them; they are recorded pending until the next cycle).",
        "",
        "## Tracking cost per cycle (10 users)",
        "",
        "Median of 5 cycles after one settling cycle; inventory and association re-check made current "
        "first (not tracking).",
        "",
        "| tracked jobs | users | jobs | remote commands | SFTP ops | cycle time |",
        "| ---: | ---: | --- | ---: | ---: | ---: |",
    ]
    for label, table in (
        ("held in Slurm (squeue lists them)", held),
        ("rows only, fake ids (all to sacct)", rows),
    ):
        for r in table:
            lines.append(
                f"| {r['tracked']} | {r['users']} | {label} | {r['commands']} | {r['sftp_ops']} | "
                f"{r['cycle_ms']:.0f} ms |"
            )
    lines += [
        "",
        "One squeue for every portal user's jobs (service account, `--user` = the users with unended "
        "jobs); one batched sacct only for jobs squeue no longer lists.",
        "",
        "## Certificates",
        "",
        f"- key pair + certificate (`ssh.Certificate(ca, 'tk-u0').load()`: reads the CA, makes an "
        f"Ed25519 key, signs, loads it into paramiko): {certs['certificate_load_us']:.0f} µs mean "
        f"(signing alone {certs['sign_only_us']:.0f} µs)",
        f"- fresh login with a new certificate: {certs['certificate_login_ms']:.1f} ms "
        f"({certs['certificate_login_and_command_ms']:.1f} ms with a first command); "
        f"service account's key file: {certs['key_login_ms']:.1f} ms "
        f"({certs['key_login_and_command_ms']:.1f} ms)",
        f"- one command over an open pooled connection: {certs['pooled_command_ms']:.1f} ms "
        f"(a fresh certificate login costs {certs['certificate_login_and_command_ms'] / certs['pooled_command_ms']:.0f}× "
        "a pooled command)",
        "",
        "Signing is not what a member's first job waits for: the login is (TCP + key exchange + "
        "authentication), and the first command on a new connection costs ~50 ms more than a pooled one "
        "whichever the credential (sshd's per-connection session set-up, presumably); hence one pooled "
        "connection per (cluster, user).",
        "",
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=100, help="submissions per run (default 100)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each kind, alternated (default 3)")
    parser.add_argument("--tracked", default="1,100,500", help="tracked-job levels (default 1,100,500)")
    args = parser.parse_args()
    levels = [int(x) for x in args.tracked.split(",")]
    note = machine_note()
    bench = Bench()
    runs: dict[str, list[dict[str, Any]]] = {"one": [], "ten": []}
    try:
        for _ in range(args.repeats):
            runs["one"].append(bench.submission(bench.members[:1], args.jobs))
            runs["ten"].append(bench.submission(bench.members, args.jobs))
        held = bench.tracking_held(levels)
        rows = bench.tracking_rows(levels)
        certs = bench.certificates()
    finally:
        cancel_users(bench.service, bench.users)
        bench.service_pool.close_all()
    note += f", {' '.join(Path('/proc/loadavg').read_text().split()[:3])} at the end"
    lines = report(note, args.jobs, runs, held, rows, certs)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "identity.md").write_text("\n".join(lines))
    print("\n".join(lines))
    DB.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
