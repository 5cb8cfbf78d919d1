"""``manage.py seed_demo``: fill an empty database with deterministic synthetic demo data."""

import sys
import time

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from careportal.demo import MAX_PATIENTS, existing_data, seed_demo

MIN_PATIENTS = 5  # the showcase family and its neighbours


class Command(BaseCommand):
    help = (
        "Create demo data: a published Designer configuration, demo users, sending lines, inbound addresses, "
        "patients with care teams, encounters and documents, and an inbox of communications. Refuses to run on "
        "a database that already holds data unless --if-empty is given, in which case it skips quietly. Progress "
        "goes to stderr (a bar on a terminal, plain lines otherwise)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--patients", type=int, default=500, help="Number of patients (default 500).")
        parser.add_argument(
            "--communications",
            type=int,
            default=2000,
            help="Number of communications, ~5 messages each (default 2000).",
        )
        parser.add_argument(
            "--seed", type=int, default=1, help="Random seed; the same seed gives the same data."
        )
        parser.add_argument(
            "--if-empty",
            action="store_true",
            help="Do nothing (and succeed) when the database already holds data, instead of failing.",
        )
        parser.add_argument(
            "--no-logins",
            action="store_true",
            help="Do not print the demo logins (make run prints them itself).",
        )

    def handle(self, *args, patients: int, communications: int, seed: int, if_empty: bool, **options):
        if not MIN_PATIENTS <= patients <= MAX_PATIENTS:
            raise CommandError(f"--patients must be between {MIN_PATIENTS} and {MAX_PATIENTS:,}.")
        if communications < 0:
            raise CommandError("--communications must not be negative.")
        if not connection.features.can_return_rows_from_bulk_insert:
            raise CommandError("seed_demo needs ids back from bulk inserts: use PostgreSQL or SQLite 3.35+.")
        reason = existing_data()
        if reason is not None:
            if if_empty:
                self.stdout.write("Demo data already present; skipping.")
                return
            raise CommandError(
                f"The database is not empty ({reason}); seed_demo only fills an empty database. "
                "Run it on a fresh database, or pass --if-empty to skip when data is present."
            )
        started = time.monotonic()
        counts = seed_demo(
            patients=patients,
            communications=communications,
            seed=seed,
            # Progress: tqdm's bar when stderr is a terminal (it needs the raw stream for "\r"), plain lines otherwise.
            progress_file=getattr(self.stderr, "_out", sys.stderr),
            log=self.stdout.write,
        )
        elapsed = time.monotonic() - started
        summary = ", ".join(f"{count:,} {kind.replace('_', ' ')}" for kind, count in counts.items())
        self.stdout.write(self.style.SUCCESS(f"Demo data created in {elapsed:.1f} s: {summary}."))
        if not options["no_logins"]:
            call_command("demo_logins", stdout=self.stdout._out)
