"""Post the Slack notifications that are due (the scheduler's worker also does this each cycle)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from slackbot.delivery import deliver_pending


class Command(BaseCommand):
    help = "Post due Slack notifications from the outbox."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--limit", type=int, default=20, help="Post at most this many (default 20).")

    def handle(self, *args: Any, **options: Any) -> None:
        sent = deliver_pending(limit=options["limit"])
        self.stdout.write(f"{sent} sent")
