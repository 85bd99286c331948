from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError
from tqdm import tqdm

from sync.client import TargetApiClient
from sync.errors import SyncError, SyncLocked
from sync.management.arguments import url_problem
from sync.syncing import FailedEntity, SyncOptions, sync_changes

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_LOCKED = 75  # EX_TEMPFAIL: another run is under way, try again later


class Command(BaseCommand):
    help = (
        "Send the pending changes of posts and comments to the target with the fewest calls. "
        "Exit codes: 0 all delivered, 1 some entities failed, 2 bad usage or configuration, "
        "75 another run holds the lock."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--url", help=f"target base URL (default {settings.FAKE_API_URL})")
        parser.add_argument("--dry-run", action="store_true", help="print the plan, send nothing")
        parser.add_argument(
            "--full",
            action="store_true",
            help="compare the whole target with the database and repair every difference",
        )
        parser.add_argument("--concurrency", type=int, default=settings.SYNC_CONCURRENCY)
        parser.add_argument(
            "--max-rps",
            type=float,
            default=settings.SYNC_MAX_RPS,
            help="request rate cap; 0 means unlimited",
        )
        parser.add_argument("--batch-size", type=int, default=settings.SYNC_BATCH_SIZE)
        parser.add_argument("--timeout", type=float, default=settings.FAKE_API_TIMEOUT)
        parser.add_argument(
            "--time-budget",
            type=float,
            default=settings.SYNC_TIME_BUDGET,
            help="seconds after which the run starts no new call; 0 means no limit",
        )

    def handle(self, *args, **options) -> None:
        url = (options["url"] or settings.FAKE_API_URL).rstrip("/")
        self._check_usage(url, options)
        client = TargetApiClient.from_settings(
            url=url,
            timeout=options["timeout"],
            max_rps=options["max_rps"],
            pool_size=max(10, options["concurrency"]),
        )
        interactive = self.stdout.isatty()
        bar = tqdm(total=0, unit="call", disable=not interactive, leave=False)

        def on_planned(total: int) -> None:
            bar.reset(total=total)

        def on_failure(failed: FailedEntity) -> None:
            line = f"FAILED {failed}"
            if interactive:
                bar.write(line)
            else:
                self.stdout.write(line)

        try:
            report = sync_changes(
                client=client,
                options=SyncOptions(
                    concurrency=options["concurrency"],
                    batch_size=options["batch_size"],
                    max_attempts=settings.SYNC_MAX_ATTEMPTS,
                    time_budget=options["time_budget"],
                    cascade_deletes=settings.SYNC_TARGET_CASCADES,
                ),
                full=options["full"],
                dry_run=options["dry_run"],
                on_planned=on_planned,
                on_progress=bar.update,
                on_failure=on_failure,
            )
        except SyncLocked as exc:
            raise CommandError(str(exc), returncode=EXIT_LOCKED) from None
        except SyncError as exc:
            raise CommandError(f"Sync failed: {exc}", returncode=EXIT_FAILED) from None
        except DatabaseError as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CommandError(
                f"Sync failed: database error ({reason}); what was not recorded is sent again "
                "by the next run",
                returncode=EXIT_FAILED,
            ) from None
        finally:
            bar.close()
            client.close()

        if report.dry_run:
            for planned in report.planned:
                self.stdout.write(str(planned))
        for notice in report.notices:
            self.stdout.write(notice)
        self.stdout.write(report.summary())
        if not report.ok:
            raise CommandError(
                f"{len(report.failed)} entities were not delivered; "
                "they stay pending for the next run (see sync_status)",
                returncode=EXIT_FAILED,
            )

    def _check_usage(self, url: str, options: dict) -> None:
        problems = []
        if problem := url_problem(url):
            problems.append(f"--url {problem}")
        if options["concurrency"] < 1:
            problems.append("--concurrency must be at least 1")
        if options["batch_size"] < 1:
            problems.append("--batch-size must be at least 1")
        if options["max_rps"] < 0:
            problems.append("--max-rps must be 0 (unlimited) or more")
        if options["timeout"] <= 0:
            problems.append("--timeout must be more than 0")
        if options["time_budget"] < 0:
            problems.append("--time-budget must be 0 (no limit) or more")
        if problems:
            raise CommandError("; ".join(problems), returncode=EXIT_USAGE)
