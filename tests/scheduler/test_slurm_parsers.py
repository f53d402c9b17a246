"""The Slurm parsers as pure functions over output recorded from the real dev cluster (Slurm 22.05).

The files in recorded/ were written by recorded/capture.py: the worker's own commands, run over SSH
as the cluster user, on jobs crafted to end each way (see the JOBS table there). No cluster needed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import pytest

from scheduler import slurm

RECORDED = Path(__file__).resolve().parent / "recorded"


def recorded(name: str) -> str:
    return (RECORDED / name).read_text()


def one(name: str) -> slurm.AccountingRecord:
    """The single job in recorded/sacct_<name>.txt."""
    records = slurm.parse_sacct(recorded(f"sacct_{name}.txt"))
    assert len(records) == 1
    return next(iter(records.values()))


# --- portal_state ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("slurm_state", "expected"),
    [
        ("PENDING", "pending"),
        ("REQUEUED", "pending"),
        ("CONFIGURING", "running"),
        ("RUNNING", "running"),
        ("COMPLETING", "running"),
        ("COMPLETED", "completed"),
        ("FAILED", "failed"),
        ("BOOT_FAIL", "failed"),
        ("DEADLINE", "failed"),
        ("CANCELLED", "cancelled"),
        ("CANCELLED by 1001", "cancelled"),
        ("CANCELLED by 0", "cancelled"),
        ("CANCELLED+", "cancelled"),  # sacct's truncation mark
        ("TIMEOUT", "timeout"),
        ("OUT_OF_MEMORY", "out_of_memory"),
        ("NODE_FAIL", "node_fail"),
        ("PREEMPTED", "preempted"),
        (" running\n", "running"),
        ("", "pending"),
        ("SOME_FUTURE_STATE", "failed"),  # unknown: never mistaken for success or for still running
    ],
)
def test_portal_state(slurm_state: str, expected: str) -> None:
    assert slurm.portal_state(slurm_state) == expected


def test_every_portal_state_is_a_job_state() -> None:
    from scheduler.models import Job

    assert set(slurm._STATE_MAP.values()) <= set(Job.State.values)
    assert {s for s in Job.State.values if s not in ("submitting", "pending", "running")} == slurm.TERMINAL


# --- small fields ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "minutes"),
    [
        ("7-00:00:00", 7 * 1440),
        ("01:00:00", 60),
        ("1:30:00", 90),
        ("30", 30),  # bare minutes
        ("30:00", 30),  # minutes:seconds
        ("00:00:30", 1),  # a started minute counts
        ("1-12", 1440 + 720),  # days-hours
        ("1-12:30", 1440 + 750),  # days-hours:minutes
        ("1-12:30:15", 1440 + 751),
        ("UNLIMITED", None),
        ("INFINITE", None),
        ("NONE", None),
        ("", None),
    ],
)
def test_parse_duration_minutes(value: str, minutes: int | None) -> None:
    assert slurm.parse_duration_minutes(value) == minutes


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("3:0", (3, 0)),
        ("0:9", (0, 9)),
        ("0:15", (0, 15)),
        (" 1:0\n", (1, 0)),
        ("", (None, None)),  # a NODE_FAIL batch step reports none
        ("garbage", (None, None)),
    ],
)
def test_parse_exit_code(value: str, expected: tuple[int | None, int | None]) -> None:
    assert slurm.parse_exit_code(value) == expected


def test_parse_sbatch() -> None:
    job_id = slurm.parse_sbatch(recorded("sbatch.txt"))
    assert job_id.isdigit()
    assert job_id == json.loads(recorded("job_ids.json"))["running"]  # the last one capture.py sent
    assert slurm.parse_sbatch("12345;tanuki-dev\n") == "12345"  # federated/multi-cluster form
    assert slurm.parse_sbatch("sbatch: warning: something\n678\n") == "678"
    for garbage in ("", "\n", "sbatch: error: Batch job submission failed", "12a"):
        with pytest.raises(ValueError, match="job id"):
            slurm.parse_sbatch(garbage)


def test_parse_time() -> None:
    assert slurm.parse_time("2026-11-28T11:11:14") == dt.datetime(2026, 11, 28, 11, 11, 14)
    # SLURM_TIME_FORMAT=%s: epoch seconds become an aware UTC time.
    assert slurm.parse_time("1795865503") == dt.datetime(2026, 11, 28, 11, 31, 43, tzinfo=dt.UTC)
    for placeholder in ("Unknown", "None", "N/A", "", "  "):
        assert slurm.parse_time(placeholder) is None


# --- squeue ---------------------------------------------------------------------------------------------


def test_parse_squeue_recorded() -> None:
    entries = {e.name: e for e in slurm.parse_squeue(recorded("squeue.txt"))}
    ids = json.loads(recorded("job_ids.json"))
    running = entries["rec-running"]
    assert (running.job_id, running.slurm_state, running.state) == (ids["running"], "RUNNING", "running")
    assert running.nodes == "node1" and running.reason == ""  # `None` is a placeholder
    assert running.comment == "tanuki:rec-running"
    assert isinstance(running.start, dt.datetime) and isinstance(running.submit, dt.datetime)
    pending = entries["rec-pending"]
    assert (pending.state, pending.reason, pending.nodes) == ("pending", "BeginTime", "")
    assert pending.start is not None and pending.submit is not None
    assert pending.start - pending.submit >= dt.timedelta(minutes=59)  # the expected start: --begin
    waiting = entries["rec-dep_child"]  # held by afterok on a job still running
    assert (waiting.state, waiting.reason, waiting.start) == ("pending", "Dependency", None)  # N/A
    # Cancelled a moment ago: still COMPLETING, which is not an end state yet.
    assert entries["rec-cancelled"].slurm_state == "COMPLETING"
    assert entries["rec-cancelled"].state == "running"
    # squeue lists only what is queued or running: finished jobs are for sacct.
    assert "rec-completed" not in entries and "rec-failed" not in entries


def test_parse_squeue_keeps_a_comment_containing_the_separator() -> None:
    line = "7|RUNNING|None|node[1-2]|2026-11-28T11:11:14|2026-11-28T11:11:13|tanuki-x|a|b|c\n"
    (entry,) = slurm.parse_squeue(line)
    assert (entry.nodes, entry.name, entry.comment) == ("node[1-2]", "tanuki-x", "a|b|c")
    with pytest.raises(ValueError, match="unexpected squeue line"):
        slurm.parse_squeue("7|RUNNING|None\n")
    assert slurm.parse_squeue("\n\n") == []


def test_a_squeue_entry_keeps_its_times_as_text_and_reads_them_when_asked() -> None:
    line = "7|PENDING|Priority|(null)|1795865503|N/A|tanuki-x|tanuki:x\n"
    (queued,) = slurm.parse_squeue(line)
    assert (queued.state, queued.reason, queued.nodes) == ("pending", "Priority", "")
    assert (queued.start_text, queued.submit_text) == ("1795865503", "N/A")
    assert queued.start == dt.datetime(2026, 11, 28, 11, 31, 43, tzinfo=dt.UTC)  # Slurm's expected start
    assert queued.submit is None


# --- sacct ----------------------------------------------------------------------------------------------


def test_failed_exit_3_with_steps() -> None:
    record = one("failed")
    assert (record.state, record.exit_code, record.signal) == ("failed", 3, 0)
    assert record.steps == {"batch": "failed", "0": "completed"}
    assert (record.nodes, record.gpus, record.name, record.comment) == (
        "node1",
        0,
        "rec-failed",
        "tanuki:rec-failed",
    )
    assert record.start is not None and record.end is not None and record.end >= record.start


def test_cancelled_by_uid() -> None:
    record = one("cancelled")
    assert (record.state, record.slurm_state, record.cancelled_by_uid) == (
        "cancelled",
        "CANCELLED by 1001",
        1001,
    )
    assert (record.exit_code, record.signal) == (0, 15)  # the batch step got SIGTERM
    assert record.steps == {"batch": "cancelled"}


def test_cancelled_job_whose_script_caught_sigterm_and_exited_1_is_still_cancelled() -> None:
    record = one("cancelled_trapped")
    assert record.steps == {"batch": "failed"}  # the script's own `exit 1` on SIGTERM
    assert (record.state, record.cancelled_by_uid, record.exit_code) == ("cancelled", 1001, 1)


def test_node_fail_with_a_cancelled_batch_step() -> None:
    record = one("node_fail")
    assert record.steps == {"batch": "cancelled"}
    assert (record.state, record.nodes) == ("node_fail", "node4")
    # The script never exited: no exit code (the allocation line's 0:0 is not one).
    assert (record.exit_code, record.signal) == (None, None)
    assert record.elapsed_seconds > 0 and record.start is not None


def test_timeout() -> None:
    record = one("timeout")
    assert (record.state, record.steps) == ("timeout", {"batch": "cancelled"})
    assert record.elapsed_seconds >= 60


def test_timeout_whose_script_caught_sigterm_and_exited_1_is_still_timeout() -> None:
    record = one("timeout_trapped")
    assert (record.state, record.steps, record.exit_code) == ("timeout", {"batch": "failed"}, 1)


def test_completed_allocation_with_a_failed_step_is_failed() -> None:
    record = one("step_failed")
    assert record.slurm_state == "COMPLETED"
    assert record.steps == {"batch": "completed", "0": "failed"}
    assert record.state == "failed"


def test_completed_allocation_whose_batch_step_failed_is_failed() -> None:
    """Slurm 22.05 here never produced this combination (the job state follows the batch script), so
    this one is the recorded `completed` job with its batch line edited to FAILED 1:0 / 0:0."""
    lines = recorded("sacct_completed.txt").splitlines()
    assert lines[0].split("|")[1] == "COMPLETED" and lines[1].split("|")[1] == "COMPLETED"
    for batch_state, exit_code in (("FAILED", "1:0"), ("FAILED", "0:0"), ("OUT_OF_MEMORY", "0:125")):
        fields = lines[1].split("|")
        fields[1], fields[2] = batch_state, exit_code
        (record,) = slurm.parse_sacct("\n".join([lines[0], "|".join(fields)])).values()
        assert record.state != "completed"
        assert record.state == ("out_of_memory" if batch_state == "OUT_OF_MEMORY" else "failed")


def test_batch_killed_by_signal() -> None:
    record = one("batch_killed")
    assert (record.state, record.exit_code, record.signal) == ("failed", 0, 9)
    assert record.steps == {"batch": "cancelled", "0": "completed"}


def test_oom_kill_reads_failed_0_9() -> None:
    record = one("oom")
    assert record.slurm_state == "FAILED"
    assert (record.state, record.exit_code, record.signal) == ("failed", 0, 9)
    assert record.steps == {"batch": "cancelled"}  # `CANCELLED by 0`: slurmstepd killed it


def test_pending_none_assigned() -> None:
    record = one("pending")
    assert (record.state, record.nodes, record.start, record.end) == ("pending", "", None, None)
    assert record.exit_code == 0 and record.elapsed_seconds == 0 and record.gpus == 0
    assert record.comment == ""  # a pending job's comment is not in accounting yet


@pytest.mark.parametrize("name", ["pending_cancelled", "dep_child", "dep_late_child"])
def test_cancelled_before_it_started_has_no_start(name: str) -> None:
    record = one(name)
    assert (record.state, record.nodes, record.start, record.elapsed_seconds) == ("cancelled", "", None, 0)
    assert record.end is not None


def test_dependency_cancel_is_not_by_a_user() -> None:
    assert one("dep_child").cancelled_by_uid is None
    assert one("dep_parent").state == "failed"
    late = recorded("sacct_dep_late_child.txt").split("|")
    assert late[4] == late[5]  # Slurm reports Start == End for it; it never ran all the same


def test_gpus_and_gpu_hours() -> None:
    record = one("gpus")
    assert (record.state, record.gpus) == ("completed", 2)
    assert record.elapsed_seconds >= 3
    assert record.gpu_hours == round(2 * record.elapsed_seconds / 3600, 4) > 0


def test_completed() -> None:
    record = one("completed")
    assert (record.state, record.exit_code, record.signal, record.steps) == (
        "completed",
        0,
        0,
        {"batch": "completed"},
    )


def test_running() -> None:
    record = one("running")
    assert (record.state, record.gpus, record.end) == ("running", 1, None)
    assert record.start is not None and record.elapsed_seconds > 0


def test_one_batched_sacct_gives_the_same_records_as_one_per_job() -> None:
    ids = json.loads(recorded("job_ids.json"))
    together = slurm.parse_sacct(recorded("sacct_all.txt"))
    assert set(together) == set(ids.values())
    for name, job_id in ids.items():
        alone = one(name)
        if alone.state == "running":  # read a second apart: it ran a second longer
            alone.elapsed_seconds = together[job_id].elapsed_seconds
        assert together[job_id] == alone


def test_a_failed_batch_step_never_comes_out_completed() -> None:
    records = slurm.parse_sacct(recorded("sacct_all.txt"))
    failed_batch = [r for r in records.values() if r.steps.get("batch") == "failed"]
    assert len(failed_batch) >= 4
    for record in records.values():
        if "failed" in record.steps.values() or record.exit_code not in (None, 0):
            assert record.state != "completed", record


def test_sacct_rejects_a_short_line() -> None:
    with pytest.raises(ValueError, match="unexpected sacct line"):
        slurm.parse_sacct("1|COMPLETED|0:0\n")


# --- scontrol (inventory) -------------------------------------------------------------------------------


def node_lines() -> dict[str, str]:
    text = recorded("inventory.txt").partition(slurm.INVENTORY_MARK)[0]
    return {line.split()[0].split("=", 1)[1]: line for line in text.splitlines() if line.strip()}


def test_parse_oneliner_keeps_values_with_spaces_and_equals_signs() -> None:
    node3 = slurm.parse_oneliner(node_lines()["node3"])
    assert node3["NodeName"] == "node3"
    assert node3["State"] == "IDLE+DRAIN"
    assert node3["Reason"].startswith("disk check [tanuki@")
    assert node3["CfgTRES"] == "cpu=16,mem=62.50G,billing=16,gres/gpu=8,gres/gpu:h100=8"
    assert node3["AllocTRES"] == ""
    assert node3["AvailableFeatures"] == "(null)"
    assert node3["OS"].startswith("Linux ") and " " in node3["OS"]
    assert "cpu" not in node3 and "gres/gpu" not in node3  # not keys: inside a TRES value
    node4 = slurm.parse_oneliner(node_lines()["node4"])
    assert node4["State"] == "DOWN+NOT_RESPONDING"
    assert node4["Reason"].startswith("Not responding [slurm@")
    partition = slurm.parse_oneliner(recorded("inventory.txt").partition(slurm.INVENTORY_MARK)[2].strip())
    assert (partition["PartitionName"], partition["MaxTime"], partition["Nodes"]) == (
        "gpu",
        "7-00:00:00",
        "node[1-4]",
    )
    assert partition["JobDefaults"] == "(null)"


def test_parse_inventory_recorded() -> None:
    nodes, partitions = slurm.parse_inventory(recorded("inventory.txt"))
    by_name = {n.name: n for n in nodes}
    assert sorted(by_name) == ["node1", "node2", "node3", "node4"]
    node1 = by_name["node1"]
    assert (node1.state, node1.unavailable, node1.partitions) == ("MIXED", False, ("gpu",))
    assert (node1.gpus_total, node1.gpus_alloc, node1.cpus_total, node1.memory_mb) == (8, 1, 16, 64000)
    assert node1.cpus_alloc >= 1
    assert (by_name["node2"].state, by_name["node2"].unavailable, by_name["node2"].reason) == (
        "IDLE",
        False,
        "",
    )
    assert (by_name["node2"].gpus_alloc, by_name["node2"].cpus_alloc) == (0, 0)
    drained = by_name["node3"]
    assert (drained.state, drained.unavailable) == ("IDLE+DRAIN", True)
    assert drained.reason.startswith("disk check")
    down = by_name["node4"]
    assert (down.state, down.unavailable) == ("DOWN+NOT_RESPONDING", True)
    assert down.reason.startswith("Not responding")
    (gpu,) = partitions
    assert (gpu.name, gpu.state, gpu.is_default) == ("gpu", "UP", True)
    assert (gpu.max_time_minutes, gpu.default_time_minutes) == (7 * 1440, 60)
    assert (gpu.nodes, gpu.total_nodes) == ("node[1-4]", 4)


@pytest.mark.parametrize(
    ("state", "unavailable"),
    [
        ("IDLE", False),
        ("MIXED", False),
        ("ALLOCATED", False),
        ("IDLE+DRAIN", True),
        ("MIXED+DRAIN", True),
        ("DRAINED", True),
        ("DOWN", True),
        ("DOWN*", True),
        ("IDLE*", True),  # not responding
        ("DOWN+DRAIN+NOT_RESPONDING", True),
        ("IDLE+FAIL", True),
    ],
)
def test_node_unavailable(state: str, unavailable: bool) -> None:
    node = slurm.NodeInfo("n", state, "", ("gpu",), 8, 0, 16, 0, 64000)
    assert node.unavailable is unavailable


# --- command lines --------------------------------------------------------------------------------------


def test_command_lines_ask_for_explicit_fields() -> None:
    assert slurm.squeue_command("tanuki") == [
        "env",
        "SLURM_TIME_FORMAT=%s",  # epoch seconds: no guessing the login sessions' time zone
        "squeue",
        "--noheader",
        "--array",
        "--user",
        "tanuki",
        "--format",
        slurm.SQUEUE_FORMAT,
    ]
    sacct = slurm.sacct_command(["10", "9", "100", "9"])
    assert sacct[sacct.index("--jobs") + 1] == "9,10,100"  # deduplicated, numeric order
    assert sacct[sacct.index("--format") + 1] == ",".join(slurm.SACCT_FIELDS)
    assert "--parsable2" in sacct and "--noheader" in sacct
    assert sacct[:2] == ["env", "SLURM_TIME_FORMAT=%s"]
    by_name = slurm.sacct_by_name_command(["tanuki-b", "tanuki-a", "tanuki-a"])
    assert by_name[by_name.index("--name") + 1] == "tanuki-a,tanuki-b"
    assert slurm.scancel_command(["12", "3", "12"]) == ["scancel", "3", "12"]
    assert slurm.sbatch_command() == ["sbatch", "--parsable"]
    assert slurm.sbatch_command(after_ok="41") == ["sbatch", "--parsable", "--dependency=afterok:41"]


@pytest.mark.parametrize(
    ("option", "ok"),
    [
        ("--reservation=tanuki-5-ab12cd", True),
        ("--exclusive", True),
        ("--gres=gpu:h100:8", True),
        ("--reservation=a b", False),
        ("--reservation=x\n", False),  # \Z, not $: no trailing newline
        ("--Reservation=x", False),
        ("-r x", False),
    ],
)
def test_sbatch_option_re(option: str, ok: bool) -> None:
    assert bool(slurm.SBATCH_OPTION_RE.match(option)) is ok


# --- host lists -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("node[1-2,4],gpu07", ["node1", "node2", "node4", "gpu07"]),
        ("node[01-03],cpu1", ["node01", "node02", "node03", "cpu1"]),
        ("gpu[01-03],cpu1", ["gpu01", "gpu02", "gpu03", "cpu1"]),
        ("node4", ["node4"]),
        (" node[3-4]\n", ["node3", "node4"]),
        ("", []),
    ],
)
def test_expand_hostlist(text: str, names: list[str]) -> None:
    assert slurm.expand_hostlist(text) == names


@pytest.mark.parametrize("text", ["node[1-", "node[a-b]", "node[3-1]", "node]1"])
def test_a_bad_hostlist_is_a_value_error_that_names_it(text: str) -> None:
    with pytest.raises(ValueError, match="not a Slurm host list") as error:
        slurm.expand_hostlist(text)
    assert repr(text) in str(error.value)


def test_collect_hostlist_is_the_inverse() -> None:
    assert slurm.collect_hostlist(["node1", "node2", "node4"]) == "node[1-2,4]"
    assert slurm.expand_hostlist(slurm.collect_hostlist(["gpu01", "gpu02", "cpu1"])) == [
        "cpu1",
        "gpu01",
        "gpu02",
    ]
    assert slurm.collect_hostlist([]) == ""


# --- scontrol (reservations) ----------------------------------------------------------------------------

TOKYO = dt.timezone(dt.timedelta(hours=9))
SPEC = slurm.ReservationSpec(
    name="tanuki-5",
    start=dt.datetime(2030, 1, 7, 1, tzinfo=dt.UTC),
    end=dt.datetime(2030, 1, 7, 4, 30, tzinfo=dt.UTC),
    tz=TOKYO,
    partition="gpu",
    node_count=2,
    accounts=("sft", "eval"),
)


def test_reservation_commands_write_times_in_the_clusters_zone() -> None:
    create, show = slurm.create_reservation_commands(SPEC)
    assert create == [
        "scontrol", "create", "reservation", "reservationname=tanuki-5", "starttime=2030-01-07T10:00:00",
        "endtime=2030-01-07T13:30:00", "partition=gpu", "nodecnt=2", "accounts=sft,eval",
    ]  # fmt: skip
    assert show == [
        "env",
        "SLURM_TIME_FORMAT=%s",
        "scontrol",
        "--oneliner",
        "show",
        "reservation",
        "tanuki-5",
    ]
    named = dataclasses.replace(SPEC, nodes=("node3", "node4"), accounts=(), users=("tanuki",))
    assert slurm.reservation_fields(named)[3:] == ["nodes=node3,node4", "users=tanuki"]


def test_an_update_sends_neither_the_partition_nor_a_start_it_keeps() -> None:
    update, show = slurm.update_reservation_commands(dataclasses.replace(SPEC, start=None))
    assert update == [
        "scontrol", "update", "reservationname=tanuki-5", "endtime=2030-01-07T13:30:00", "nodecnt=2",
        "accounts=sft,eval",
    ]  # fmt: skip
    assert show == slurm.show_reservation_command("tanuki-5")
    assert slurm.delete_reservation_command("tanuki-5") == ["scontrol", "delete", "reservationname=tanuki-5"]
    assert slurm.show_reservation_command()[-2:] == ["show", "reservation"]  # all of them


def test_parse_reservation_created_by_node_count_recorded() -> None:
    (r,) = slurm.parse_reservations(recorded("reservation_create.txt"))
    assert (r.name, r.nodes, r.node_count, r.partition) == ("rec-by-count", "node[1-2]", 2, "gpu")
    assert (r.accounts, r.users, r.flags, r.state) == (("sft", "eval"), (), (), "INACTIVE")
    assert r.start is not None and r.end is not None and r.start.tzinfo is dt.UTC
    assert r.end - r.start == dt.timedelta(hours=2)
    assert r.node_names == ["node1", "node2"]
    assert slurm.reserved_nodes(recorded("reservation_create.txt"), "rec-by-count") == "node[1-2]"


def test_parse_reservation_of_named_nodes_recorded() -> None:
    (r,) = slurm.parse_reservations(recorded("reservation_create_nodes.txt"))
    assert (r.nodes, r.users, r.accounts, r.flags) == ("node[3-4]", ("tanuki",), (), ("SPEC_NODES",))
    assert r.node_names == ["node3", "node4"]


def test_parse_reservation_update_and_show_all_recorded() -> None:
    (updated,) = slurm.parse_reservations(recorded("reservation_update.txt"))
    assert updated.end is not None and updated.start is not None
    assert updated.end - updated.start == dt.timedelta(hours=3)  # the end moved by an hour
    shown = slurm.parse_reservations(recorded("reservation_show.txt"))
    assert [r.name for r in shown] == ["rec-by-count", "rec-by-name"]
    assert shown[0] == updated
    assert slurm.reserved_nodes(recorded("reservation_show.txt"), "rec-by-name") == "node[3-4]"


def test_a_missing_reservation_recorded() -> None:
    for name in ("reservation_show_missing.txt", "reservation_delete_missing.txt"):
        text = recorded(name)
        assert slurm.reservation_missing(text), text
        assert slurm.parse_reservations(text) == []
        assert slurm.reserved_nodes(text, "rec-by-count") == ""
    assert slurm.parse_reservations("No reservations in the system\n") == []
    assert not slurm.reservation_missing(
        "Error creating the reservation: Invalid account or account/partition"
    )


def test_only_scontrols_own_words_for_a_missing_reservation_count_as_missing() -> None:
    assert slurm.reservation_missing("Reservation tanuki-5-abc123 not found\n", "tanuki-5-abc123")
    assert slurm.reservation_missing(
        "delete_reservation reservationname=tanuki-5-abc123: Requested reservation is invalid\n",
        "tanuki-5-abc123",
    )
    updated = "Error updating the reservation: Requested reservation is invalid\n"
    assert slurm.reservation_missing(updated + "slurm_update error: Requested reservation is invalid\n")
    assert slurm.reservation_missing(updated, "tanuki-5-abc123")  # update's message names none
    # Another reservation missing is not this one (a move shows the new one and the old one).
    assert not slurm.reservation_missing("Reservation tanuki-5-def456 not found\n", "tanuki-5-abc123")
    assert not slurm.reservation_missing(
        "delete_reservation reservationname=tanuki-5-def456: Requested reservation is invalid\n",
        "tanuki-5-abc123",
    )
    for other in (
        "Node node9 not found\n",  # scontrol show node
        "Error creating the reservation: Invalid user id\n",
        "User tk-nobody not found\n",
        "Partition gpu2 not found\n",
        "bash: line 1: scontrol: command not found\n",
        "sacctmgr: error: Account not found\n",
        "Reservation tanuki-5-abc123 not found in the cache, retrying\n",  # not scontrol's line
    ):
        assert not slurm.reservation_missing(other), other
        assert not slurm.reservation_missing(other, "tanuki-5-abc123"), other
