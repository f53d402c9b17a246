"""Capture the recorded Slurm output the parser tests read (run once against the real dev cluster).

    .venv/bin/python tests/scheduler/recorded/capture.py [jobs|reservations|convergence]

Every command is the portal's own (`scheduler.slurm.*_command`), run as the cluster user over
`scheduler.ssh.Connection`, so the files hold exactly what the worker parses. `jobs` takes about two
minutes (one job must run into its one-minute time limit); it drains node3 and crashes node4 for a
moment and restores both before it exits. `reservations` takes a few seconds: two reservations a
month ahead (they hold no node now), shown, updated and deleted. `convergence` takes about ten seconds:
refused updates and what lending's sync does about them (capture_convergence). With no argument, jobs
and reservations.
Not collected by pytest (no `test_` prefix).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from scheduler import slurm, ssh  # noqa: E402

HERE = Path(__file__).resolve().parent
STATE_DIR = Path(os.environ.get("DEVCLUSTER_DIR", "/var/lib/tanuki-devcluster"))
DEVCLUSTER = ROOT / "scripts" / "devcluster"
RUN = "/home/tanuki/tanuki-runs/recorded"

TRAP_TERM = "trap 'echo caught TERM; exit 1' TERM\nsleep 300 &\nwait\n"

# name -> (sbatch options, script body)
JOBS: dict[str, tuple[list[str], str]] = {
    # exit 3 after a successful step: allocation FAILED 3:0, batch FAILED 3:0, step 0 COMPLETED.
    "failed": ([], "echo hi\nsrun true\nexit 3\n"),
    # cancelled while running: CANCELLED by <uid>, batch step CANCELLED 0:15.
    "cancelled": ([], "sleep 300\n"),
    # runs on node4, which is then crashed: NODE_FAIL, batch step CANCELLED.
    "node_fail": (["--nodelist=node4"], "sleep 300\n"),
    # one-minute limit: TIMEOUT.
    "timeout": (["--time=1"], "sleep 300\n"),
    # scripts that catch SIGTERM (e.g. to save a checkpoint) and exit 1: the batch step reads FAILED 1:0
    # while the allocation reads CANCELLED by <uid> / TIMEOUT.
    "cancelled_trapped": ([], TRAP_TERM),
    "timeout_trapped": (["--time=1"], TRAP_TERM),
    # fails after 3 s; its dependent (submitted below with afterok + kill-on-invalid-dep) is cancelled.
    "dep_parent": ([], "sleep 3\nexit 1\n"),
    # the script succeeds but an srun step fails: allocation COMPLETED 0:0, step 0 FAILED 1:0.
    "step_failed": ([], "srun false\nexit 0\n"),
    # the batch script itself is killed by a signal while the allocation line is still reported.
    "batch_killed": ([], "srun true\nkill -9 $$\n"),
    # over its memory limit: killed by OverMemoryKill, FAILED 0:9.
    "oom": (
        ["--mem=100M"],
        "python3 -c 'import time; a = b\"x\" * (400 * 1024 * 1024); time.sleep(60)'\n",
    ),
    # held by a begin time: pending, NodeList `None assigned`.
    "pending": (["--begin=now+1hour"], "true\n"),
    # cancelled while pending: Start `None`.
    "pending_cancelled": (["--begin=now+1hour"], "true\n"),
    # two GPUs, completes: AllocTRES with gres/gpu=2.
    "gpus": (["--gres=gpu:2"], "sleep 3\n"),
    # plain success.
    "completed": ([], "echo ok\n"),
    # a long runner that is RUNNING when the squeue snapshot is taken.
    "running": (["--gres=gpu:1"], "sleep 300\n"),
}


def devcluster(*args: str) -> None:
    subprocess.run([str(DEVCLUSTER), *args], check=True, capture_output=True, text=True)


def connect() -> tuple[ssh.Connection, dict[str, str]]:
    info = json.loads((STATE_DIR / "cluster.json").read_text())
    conn = ssh.Connection(
        host=info["host"],
        port=int(info["port"]),
        username=info["username"],
        key_path=Path(info["key_path"]),
        host_key=info["host_key"],
    )
    return conn, info


def capture_reservations(conn: ssh.Connection, info: dict[str, str]) -> None:
    """What lending's sync runs and parses: create + show, update + show, delete; and the misses."""
    tz = dt.datetime.now().astimezone().tzinfo or dt.UTC  # the dev cluster runs here, in this zone
    start = (dt.datetime.now(tz) + dt.timedelta(days=30)).replace(minute=0, second=0, microsecond=0)
    by_count = slurm.ReservationSpec(
        name="rec-by-count", start=start, end=start + dt.timedelta(hours=2), tz=tz,
        partition=info["partition"], node_count=2, accounts=("sft", "eval"),
    )  # fmt: skip
    by_name = slurm.ReservationSpec(
        name="rec-by-name", start=start, end=start + dt.timedelta(hours=1), tz=tz,
        partition=info["partition"], nodes=("node3", "node4"), users=(info["username"],),
    )  # fmt: skip

    def shell(*argvs: list[str]) -> ssh.CommandResult:
        return conn.run_shell(ssh.chain_commands(*argvs))

    def record(name: str, text: str) -> None:
        (HERE / name).write_text(text)

    for spec in (by_count, by_name):
        conn.run(slurm.delete_reservation_command(spec.name))  # left over from an interrupted capture
    try:
        record("reservation_create.txt", shell(*slurm.create_reservation_commands(by_count)).check().stdout)
        record(
            "reservation_create_nodes.txt", shell(*slurm.create_reservation_commands(by_name)).check().stdout
        )
        later = slurm.ReservationSpec(
            name=by_count.name, end=by_count.end + dt.timedelta(hours=1), tz=tz, node_count=2,
            accounts=by_count.accounts,
        )  # fmt: skip
        record("reservation_update.txt", shell(*slurm.update_reservation_commands(later)).check().stdout)
        shown = shell(slurm.show_reservation_command()).check().stdout
        record("reservation_show.txt", "".join(line + "\n" for line in shown.splitlines() if "=rec-" in line))
    finally:
        for spec in (by_count, by_name):
            conn.run(slurm.delete_reservation_command(spec.name)).check()
    missing = conn.run(slurm.show_reservation_command(by_count.name))
    assert not missing.ok
    record("reservation_show_missing.txt", missing.stdout + missing.stderr)
    gone = conn.run(slurm.delete_reservation_command(by_count.name))
    assert not gone.ok
    record("reservation_delete_missing.txt", gone.stdout + gone.stderr)


def capture_convergence(conn: ssh.Connection, info: dict[str, str]) -> None:
    """What lending's sync meets when Slurm refuses a change (about ten seconds, reservations 40 days
    ahead): an update refused because the reservation's node is held at the new time although others
    are free; the delete ; create ; show that moves it; the same when no node is free; a NodeCnt create
    that gets fewer nodes than asked; a delete refused while a (held) job waits in the reservation."""
    tz = dt.datetime.now().astimezone().tzinfo or dt.UTC
    day1 = (dt.datetime.now(tz) + dt.timedelta(days=40)).replace(hour=10, minute=0, second=0, microsecond=0)
    day2 = day1 + dt.timedelta(days=1)
    hours = dt.timedelta(hours=2)

    def spec(name: str, start: dt.datetime, **kw: object) -> slurm.ReservationSpec:
        kw.setdefault("node_count", 1)
        return slurm.ReservationSpec(
            name=name, start=start, end=start + hours, tz=tz, partition=info["partition"],
            accounts=(info["account"],), **kw,  # type: ignore[arg-type]
        )  # fmt: skip

    def semi(*argvs: list[str]) -> ssh.CommandResult:
        return conn.run_shell(" ; ".join(ssh.quote_command(argv) for argv in argvs))

    def record(name: str, result: ssh.CommandResult) -> None:
        (HERE / name).write_text(result.stdout + result.stderr)

    names = ["rec-a", "rec-b", "rec-wall", "rec-c", "rec-short", "rec-used"]
    for name in names:
        conn.run(slurm.delete_reservation_command(name))
    job = ""
    try:
        a, b = spec("rec-a", day1), spec("rec-b", day2)
        for made in (a, b):  # both on node1: it is free on either day
            conn.run_shell(ssh.chain_commands(*slurm.create_reservation_commands(made))).check()
        moved = dataclasses.replace(a, start=day2, end=day2 + hours)
        record(
            "reservation_update_overlap.txt",
            conn.run_shell(ssh.chain_commands(*slurm.update_reservation_commands(moved))),
        )
        record("reservation_recreate.txt", semi(*slurm.recreate_reservation_commands(moved)))
        wall = spec("rec-wall", day2, nodes=("node3", "node4"))  # day 2: node1 (b), node2 (a), node3-4
        conn.run_shell(ssh.chain_commands(*slurm.create_reservation_commands(wall))).check()
        c = spec("rec-c", day1)
        conn.run_shell(ssh.chain_commands(*slurm.create_reservation_commands(c))).check()
        record(
            "reservation_recreate_busy.txt",
            semi(*slurm.recreate_reservation_commands(dataclasses.replace(c, start=day2, end=day2 + hours))),
        )
        conn.run(slurm.delete_reservation_command("rec-wall")).check()  # day 2: two nodes free
        short = spec("rec-short", day2, node_count=3)
        record(
            "reservation_create_short.txt",
            conn.run_shell(ssh.chain_commands(*slurm.create_reservation_commands(short))),
        )
        used = spec("rec-used", day1 + dt.timedelta(days=2))
        conn.run_shell(ssh.chain_commands(*slurm.create_reservation_commands(used))).check()
        job = slurm.parse_sbatch(
            conn.run(["sbatch", "--parsable", "--hold", f"--reservation={used.name}", f"--account={info['account']}",
                      "--time=5", "--output=/dev/null", "--wrap", "true"]).check().stdout
        )  # fmt: skip
        record("reservation_recreate_in_use.txt", semi(*slurm.recreate_reservation_commands(used)))
    finally:
        if job:
            conn.run(slurm.scancel_command([job]))
            time.sleep(2)
        for name in names:
            conn.run(slurm.delete_reservation_command(name))


def capture_jobs(conn: ssh.Connection, info: dict[str, str]) -> None:
    ids: dict[str, str] = {}
    for name, (options, body) in JOBS.items():
        script = f"#!/bin/bash\n#SBATCH --job-name=rec-{name}\n#SBATCH --comment=tanuki:rec-{name}\n"
        script += f"#SBATCH --output={RUN}/{name}.out\n#SBATCH --error={RUN}/{name}.err\n"
        if name != "node_fail":
            options = [*options, "--exclude=node3,node4"]  # only node_fail runs on the node that crashes
        script += "".join(f"#SBATCH {option}\n" for option in options) + body
        result = conn.run_shell(
            ssh.chain_commands(["mkdir", "-p", RUN], slurm.sbatch_command()), stdin=script.encode()
        ).check()
        (HERE / "sbatch.txt").write_text(result.stdout)
        ids[name] = slurm.parse_sbatch(result.stdout)
    ids["dep_child"] = slurm.parse_sbatch(
        conn.run(
            [
                "sbatch",
                "--parsable",
                "--job-name=rec-dep_child",
                "--comment=tanuki:rec-dep_child",
                f"--output={RUN}/dep_child.out",
                f"--dependency=afterok:{ids['dep_parent']}",
                "--kill-on-invalid-dep=yes",
                "--exclude=node3,node4",
                "--wrap",
                "true",
            ]
        )
        .check()
        .stdout
    )
    print("submitted", ids)

    def sacct(*names: str) -> str:
        return conn.run(slurm.sacct_command(ids[n] for n in names)).check().stdout

    def squeue() -> str:
        return conn.run(slurm.squeue_command(info["username"])).check().stdout

    time.sleep(8)  # everything started; the quick ones are done
    # afterok on a job that has already failed: accepted, then cancelled with Start == End and no nodes.
    ids["dep_late_child"] = slurm.parse_sbatch(
        conn.run(
            [
                "sbatch",
                "--parsable",
                "--job-name=rec-dep_late_child",
                "--comment=tanuki:rec-dep_late_child",
                f"--output={RUN}/dep_late_child.out",
                f"--dependency=afterok:{ids['dep_parent']}",
                "--kill-on-invalid-dep=yes",
                "--wrap",
                "true",
            ]
        )
        .check()
        .stdout
    )
    (HERE / "job_ids.json").write_text(json.dumps(ids, indent=2) + "\n")
    conn.run(
        slurm.scancel_command([ids["cancelled"], ids["pending_cancelled"], ids["cancelled_trapped"]])
    ).check()
    (HERE / "squeue.txt").write_text(squeue())
    conn.run_shell(
        ssh.chain_commands(["scontrol", "update", "NodeName=node3", "State=DRAIN", "Reason=disk check"])
    ).check()
    devcluster("kill-slurmd", "node4")
    try:
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            text = conn.run_shell(ssh.chain_commands(*slurm.inventory_commands())).check().stdout
            if "NodeName=node4" in text and "State=DOWN" in text:
                break
            time.sleep(1)
        (HERE / "inventory.txt").write_text(text)
    finally:
        devcluster("start-slurmd", "node4")
        conn.run(["scontrol", "update", "NodeName=node3", "State=RESUME"]).check()
    # The OOM job is killed within 5 s of going over; the timeout job needs its minute (+ KillWait).
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline:
        records = slurm.parse_sacct(sacct("timeout", "timeout_trapped", "oom", "dep_child", "dep_late_child"))
        if all(r.state in slurm.TERMINAL for r in records.values()):
            break
        time.sleep(3)
    time.sleep(3)
    for name in ids:
        (HERE / f"sacct_{name}.txt").write_text(sacct(name))
    (HERE / "sacct_all.txt").write_text(sacct(*ids))
    conn.run(slurm.scancel_command([ids["pending"], ids["running"]])).check()


def main() -> None:
    which = sys.argv[1:] or ["jobs", "reservations"]
    conn, info = connect()
    if "jobs" in which:
        capture_jobs(conn, info)
    if "reservations" in which:
        capture_reservations(conn, info)
    if "convergence" in which:
        capture_convergence(conn, info)
    print("done")


if __name__ == "__main__":
    main()
