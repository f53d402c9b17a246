"""The drain guard on the real dev cluster: a node drained under a portal job is linked to that job and
its member, the admins' Slack message is queued, and the incident is resolved once the node is back.

The node is drained the way the cluster's admin does it (`scontrol update` as root: the portal's
service account, a Slurm Operator, may not) and resumed in a `finally`, so the next test finds a
healthy cluster.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from typing import Any

from scheduler import services
from scheduler.models import Cluster, Job, Node, NodeIncident
from scheduler.worker import Worker
from slackbot.models import Notification
from tests.personas import Team
from tests.scheduler.conftest import STATE_DIR

NODE = "node3"


def scontrol_as_admin(*args: str) -> None:
    """`scontrol` as root on this machine, against the tests' dev cluster instance."""
    env = {name: value for name, value in os.environ.items() if name != "TZ"}
    env["SLURM_CONF"] = str(STATE_DIR / "etc" / "slurm.conf")
    result = subprocess.run(
        ["scontrol", *args], capture_output=True, text=True, timeout=30, env=env, check=False
    )
    assert result.returncode == 0, result.stderr


def fresh(job: Job) -> Job:
    return Job.objects.get(pk=job.pk)


def test_a_node_drained_under_a_running_job_is_linked_to_it_and_the_admins_are_told(
    team: Team,
    cluster: Cluster,
    worker: Worker,
    run_until: Callable[..., None],
    settings: Any,
) -> None:
    settings.LANGUAGE_CODE = "en"
    team.management.slack_channel = "#admins"
    team.management.save()
    member = team.member("member")
    spec = services.JobSpec(subteam=team.sft, cluster=cluster, name="on-node3", command="sleep 300")
    job = services.submit_job(member, spec)
    # The job form has no node list: pin this one to NODE in its script (before the worker sends it).
    job.script = job.script.replace(
        "#SBATCH --partition=", f"#SBATCH --nodelist={NODE}\n#SBATCH --partition="
    )
    job.save(update_fields=["script"])
    run_until(lambda: fresh(job).state == Job.State.RUNNING)
    assert fresh(job).node_list == NODE

    def incidents() -> Any:
        return NodeIncident.objects.filter(cluster=cluster, node_name=NODE)

    def inventory_then(condition: Callable[[], bool]) -> Callable[[], bool]:
        """Read the inventory again in the next cycle (it is read every 30 s otherwise)."""

        def check() -> bool:
            if condition():
                return True
            Cluster.objects.filter(pk=cluster.pk).update(inventory_at=None)
            return False

        return check

    assert not incidents().exists()
    scontrol_as_admin("update", f"NodeName={NODE}", "State=DRAIN", "Reason=Kill task failed")
    try:
        run_until(inventory_then(lambda: incidents().exists()), timeout=60)
        incident = incidents().get()
        node = Node.objects.get(cluster=cluster, name=NODE)
        assert node.unavailable and "DRAIN" in incident.state, incident.state
        assert incident.reason.startswith("Kill task failed [root@"), incident.reason
        assert incident.resolved_at is None
        assert [(j.pk, j.owner) for j in incident.jobs.all()] == [(job.pk, member)]
        admins = Notification.objects.get(event_key=f"node-incident:{incident.pk}:admins")
        assert admins.channel == "#admins" and admins.sent_at is None  # queued (no bot token here)
        assert admins.text.startswith(f"Node {NODE} on {cluster.name} is out of service (")
        assert "UnkillableStepTimeout" in admins.text and f"/jobs/{job.pk}/|on-node3> (Member" in admins.text
        assert (
            Notification.objects.get(event_key=f"node-incident:{incident.pk}:{team.sft.pk}").channel == "#sft"
        )
        assert fresh(job).state == Job.State.RUNNING  # a drain lets the running job go on
    finally:
        scontrol_as_admin("update", f"NodeName={NODE}", "State=RESUME")
    run_until(inventory_then(lambda: incidents().get().resolved_at is not None), timeout=60)
    assert not Node.objects.get(cluster=cluster, name=NODE).unavailable
    assert incidents().count() == 1
