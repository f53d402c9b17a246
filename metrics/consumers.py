"""Websockets for live charts: `/ws/jobs/<uuid>/` and `/ws/subteams/<slug>/`.

Authorised on connect through metrics.access (signed-in members); a refused connection is closed.
Messages are those of `scheduler.live` (states, log text) and `metrics.push` (points), forwarded as JSON.
"""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from metrics import access
from metrics.push import progress_of
from scheduler.live import job_group, subteam_group


class _UpdatesConsumer(AsyncJsonWebsocketConsumer):
    group = ""

    async def connect(self) -> None:
        group = await database_sync_to_async(self.authorise)()
        if group is None:
            await self.close()
            return
        self.group = group
        await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()

    def authorise(self) -> str | None:
        raise NotImplementedError

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def job_update(self, message: dict[str, Any]) -> None:
        data = {k: v for k, v in message.items() if k != "type"}
        if "state" in data and "progress" not in data:
            # A state change pushed by the scheduler, which knows nothing of training progress.
            progress = await database_sync_to_async(progress_of)(data["job"])
            if progress is not None:
                data["progress"] = progress
        await self.send_json(data)


class JobUpdatesConsumer(_UpdatesConsumer):
    def authorise(self) -> str | None:
        from scheduler.models import Job

        job_id = self.scope["url_route"]["kwargs"]["job_id"]
        job = Job.objects.filter(pk=job_id).first()
        if job is None or not access.can_see_metrics(self.scope["user"], job):
            return None
        return job_group(job.pk)


class SubteamUpdatesConsumer(_UpdatesConsumer):
    def authorise(self) -> str | None:
        from portal.models import Subteam

        subteam = Subteam.objects.filter(slug=self.scope["url_route"]["kwargs"]["slug"]).first()
        if subteam is None or not access.can_watch_subteam_runs(self.scope["user"], subteam):
            return None
        return subteam_group(subteam.slug)
