"""The preflight's room check: `df -Pk` and linuxquota's `quota -w` as a member's login prints them
(recorded), read into what is left where the run writes, and the command line that asks."""

from __future__ import annotations

import shlex

from scheduler import preflight

DF = """\
Filesystem     1024-blocks     Used Available Capacity Mounted on
/dev/vda         264212084 28288052  78102860      27% /
"""
DF_NFS = """\
Filesystem                 1024-blocks       Used  Available Capacity Mounted on
nfs01:/export/home       10485760000 9000000000 1485760000      86% /home
"""
QUOTA_OVER_SOFT = """\
---
Disk quotas for user tk-member (uid 1001):
     Filesystem  blocks   quota   limit   grace   files   quota   limit   grace
nfs01:/export/home 5242880*  5000000  6000000  6days     120       0       0
"""
QUOTA_NONE = """\
---
Disk quotas for user tk-member (uid 1001): none
"""
QUOTA_OTHER_FS = """\
---
Disk quotas for user tk-member (uid 1001):
     Filesystem  blocks   quota   limit   grace   files   quota   limit   grace
      /dev/sdb1     100     200     300              1       0       0
"""


def test_free_space_alone_when_no_quota_is_reported() -> None:
    for tail in ("---\n", QUOTA_NONE, QUOTA_OTHER_FS, ""):
        room = preflight.parse_space(DF + tail)
        assert room == preflight.Room(path="/", free=78102860 * 1024)
        assert room.available == 78102860 * 1024


def test_the_members_quota_on_that_filesystem_bounds_the_room() -> None:
    room = preflight.parse_space(DF_NFS + QUOTA_OVER_SOFT)
    assert room is not None
    assert (room.path, room.quota_used, room.quota_limit) == ("/home", 5242880 * 1024, 5000000 * 1024)
    assert room.available == 0  # over the soft limit: nothing left, whatever the disk has


def test_a_quota_with_only_a_hard_limit() -> None:
    quota = (
        "---\nDisk quotas for user x (uid 1):\n Filesystem blocks quota limit grace files quota limit grace\n"
    )
    quota += "/dev/vda 1000 0 3000 5 0 0\n"
    room = preflight.parse_space(DF + quota)
    assert room is not None and room.available == 2000 * 1024


def test_nothing_is_concluded_when_df_says_nothing() -> None:
    for output in ("", "---\n", "---\nDisk quotas for user x (uid 1): none\n", "garbage\n"):
        assert preflight.parse_space(output) is None


def test_the_command_asks_for_the_nearest_existing_ancestor_quoted() -> None:
    command = preflight.space_command("/srv/runs/tk member/0a1b")
    df = command.split(" 2>/dev/null;", 1)[0]
    assert shlex.split(df) == [
        "df", "-Pk", "--", "/srv/runs/tk member/0a1b", "/srv/runs/tk member", "/srv/runs", "/srv", "/",
    ]  # fmt: skip
    assert command.endswith("quota -w 2>/dev/null; true")
