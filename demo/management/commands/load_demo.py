"""`manage.py load_demo`: load (or refresh) the demo team (demo/team.py) and its MT-Bench results (demo/results.py)."""

from __future__ import annotations

import datetime as dt
from argparse import ArgumentParser
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from demo import results, team


class Command(BaseCommand):
    help = (
        "Create or refresh a synthetic 45-person team with subteams, goals, milestones and tasks, dated "
        "so that today is in week 7 of the 10-week plan. Safe to run again. Every demo user, `admin` "
        "included, gets the password in DEMO_PASSWORD (default 'demo')."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--today",
            type=dt.date.fromisoformat,
            default=None,
            help="Pretend today is this date (YYYY-MM-DD) when placing the plan; default: the real today.",
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="Load even with DEBUG off. The demo users (a superuser among them) share one known password.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG and not options["force"]:
            raise CommandError(
                "load_demo creates a superuser with a known password; it runs with DEBUG=1 "
                "(as `make demo` does) or with --force."
            )
        summary = team.load_demo(today=options["today"])
        self.stdout.write(self.style.SUCCESS(summary.line()))
        created = results.load(options["today"])
        self.stdout.write(f"{len(created)} MT-Bench results and baselines on the leaderboard.")
        for line in summary.sign_in_lines():
            self.stdout.write(line)
