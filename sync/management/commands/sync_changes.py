import json
import math
import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, connection

from sync.changelog import ParkedFilter, discard_parked, retry_parked
from sync.client import TargetApiClient
from sync.errors import SyncError, SyncLocked, TargetChanged, tables_missing, without_password
from sync.following import Follower, FollowOptions, StopRequest, stopping_run
from sync.management.arguments import (
    actor,
    age_problem,
    entity_problem,
    parked_filter,
    seconds_problem,
    status_problem,
    url_problem,
)
from sync.management.progress import RunProgress
from sync.planner import Kind, Op
from sync.syncing import (
    FailedEntity,
    StopSignal,
    SyncOptions,
    SyncReport,
    sync_changes,
    verify_target,
)

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_LOCKED = 75  # EX_TEMPFAIL: another run is under way, try again later


class Command(BaseCommand):
    help = (
        "Send the pending changes of posts and comments to the target with the fewest calls. "
        "Exit codes: 0 all delivered (--follow: stopped by SIGTERM or SIGINT), 1 some entities "
        "failed, 2 bad usage or configuration, 75 another run holds the lock, 130 or 143 "
        "stopped by SIGINT or SIGTERM (the calls under way recorded)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--url", help=f"target base URL (default {without_password(settings.TARGET_URL)})"
        )
        parser.add_argument("--dry-run", action="store_true", help="print the plan, send nothing")
        parser.add_argument(
            "--full",
            action="store_true",
            help="compare the whole target with the database and repair every difference",
        )
        parser.add_argument(
            "--concurrency",
            type=int,
            default=settings.SYNC_CONCURRENCY,
            help="target calls in flight at once (default: SYNC_CONCURRENCY)",
        )
        parser.add_argument(
            "--max-rps",
            type=float,
            default=settings.SYNC_MAX_RPS,
            help="request rate cap; 0 means unlimited",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=settings.SYNC_BATCH_SIZE,
            help="most calls whose rows and sync state are loaded at once "
            "(default: SYNC_BATCH_SIZE)",
        )
        parser.add_argument(
            "--timeout",
            type=float,
            default=settings.FAKE_API_TIMEOUT,
            help="seconds one attempt of a call may take, from connecting to the last byte",
        )
        parser.add_argument(
            "--time-budget",
            type=float,
            default=settings.SYNC_TIME_BUDGET,
            help="seconds after which the run starts no new call; 0 means no limit",
        )
        parser.add_argument(
            "--allow-deletes",
            action="store_true",
            help="with --full: delete every record of the target that the database lacks, even "
            f"more than SYNC_FULL_MAX_DELETES ({settings.SYNC_FULL_MAX_DELETES})",
        )
        parser.add_argument(
            "--verify",
            action="store_true",
            help="compare the target with the database and say what differs; sends no call, "
            "takes no lock, changes nothing but the record of this check (exit 1 when they "
            "differ)",
        )
        parser.add_argument(
            "--json",
            action="store_true",
            help="with --verify: print the result as JSON, the differences listed (at most 100)",
        )
        parser.add_argument(
            "--follow",
            action="store_true",
            help="keep running: sync each change as it commits, until SIGTERM or SIGINT; a "
            "second follower waits as a standby and takes over when the first one dies",
        )
        parser.add_argument(
            "--retry-parked",
            action="store_true",
            help="un-park the parked entities (after fixing the cause), then run",
        )
        parser.add_argument(
            "--entity",
            action="append",
            default=[],
            metavar="KIND:ID",
            help="with --retry-parked or --discard-parked: only this entity, e.g. post:5 "
            "(repeatable)",
        )
        parser.add_argument(
            "--discard-parked",
            action="store_true",
            help="the target keeps what it has for the parked entities (the filters narrow them): "
            "their pending changes are dropped and they leave the failing lists; asks first",
        )
        parser.add_argument(
            "--kind",
            choices=[kind.value for kind in Kind],
            help="with --retry-parked or --discard-parked: only posts, or only comments",
        )
        parser.add_argument(
            "--status",
            metavar="HTTP_STATUS",
            help="with --retry-parked or --discard-parked: only those whose last failure had this "
            "HTTP status (e.g. 422), or none (no answer)",
        )
        parser.add_argument(
            "--older-than",
            metavar="AGE",
            help="with --retry-parked or --discard-parked: only those parked longer ago than "
            "AGE, e.g. 30m, 2h, 7d",
        )
        parser.add_argument(
            "--yes",
            action="store_true",
            help="with --discard-parked: do not ask",
        )

    def handle(self, *args, **options) -> None:
        url = settings.TARGET_URL if options["url"] is None else options["url"]
        self._check_usage(url, options)  # the URL as given, in what a refusal says
        url = url.strip().rstrip("/")
        connection.ensure_connection()  # a database out of reach: one line, before anything
        if options["discard_parked"]:
            self._discard(parked_filter(options), confirmed=options["yes"])
            return
        with _client(url, options) as client:
            if options["follow"]:
                self._retry_parked(options)
                self._follow(client, _sync_options(options))
                return
            if options["verify"]:
                self._verify(client, as_json=options["json"])
                return
            stop = StopSignal()
            with stopping_run(stop) as received:
                self._retry_parked(options)
                report = self._run(client, _sync_options(options), options, stop, received)
        self._write_outcome(report, received)

    def _write_outcome(self, report: SyncReport, received: StopRequest) -> None:
        """A one-shot run's last lines, and its exit status."""
        if received:
            raise CommandError(_stopped(received, report), returncode=received.exit_status)
        if report.dry_run:
            for planned in report.planned:
                self.stdout.write(str(planned))
        self._write_report(report)
        if not report.ok:
            # An incremental run sends what waits in the change log: an entity a full run failed
            # with no change waiting (a record that drifted) is the next full run's.
            again = (
                "the next --full run sends them again (those with a change waiting, the next run)"
                if report.mode == "full"
                else "they stay pending for the next run"
            )
            raise CommandError(
                f"{len(report.failed)} entities were not delivered; {again} (see sync_status)",
                returncode=EXIT_FAILED,
            )

    def _retry_parked(self, options: dict) -> None:
        if options["retry_parked"]:
            self._say(_unparked(retry_parked(filters=parked_filter(options), actor=actor())))

    def _run(
        self,
        client: TargetApiClient,
        sync_options: SyncOptions,
        options: dict,
        stop: StopSignal,
        received: StopRequest,
    ) -> SyncReport:
        """One run; on a terminal, a progress bar. Failures are printed as they come, but for
        the calls a stop signal kept from being sent: the last line says what was left."""
        progress = RunProgress(self.stdout)

        def on_failure(failed: FailedEntity) -> None:
            if not (received and failed.error == f"not sent: {stop.reason}"):
                progress.failed(failed)

        try:
            return sync_changes(
                client=client,
                options=sync_options,
                full=options["full"],
                dry_run=options["dry_run"],
                on_planned=progress.planned,
                on_progress=progress.sent,
                on_failure=on_failure,
                stop=stop,
            )
        except SyncLocked as exc:
            raise CommandError(str(exc), returncode=EXIT_LOCKED) from None
        except SyncError as exc:
            # A full run stopped while it read the target (a signal, its time budget): no call.
            if received:
                raise CommandError(_stopped(received), returncode=received.exit_status) from None
            if stop.is_set():
                raise CommandError(
                    f"Sync {stop.reason}, before any call; everything stays pending",
                    returncode=EXIT_FAILED,
                ) from None
            raise CommandError(f"Sync failed: {exc}", returncode=EXIT_FAILED) from None
        except DatabaseError as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if tables_missing(reason):
                message = f"({reason}; its tables are missing: run manage.py migrate)"
            else:
                message = f"({reason}); what was not recorded is sent again by the next run"
            raise CommandError(
                f"Sync failed: database error {message}", returncode=EXIT_FAILED
            ) from None
        finally:
            progress.close()

    def _follow(self, client: TargetApiClient, sync_options: SyncOptions) -> None:
        """Follow the change log until SIGTERM or SIGINT; one summary line per run with work."""
        follower = Follower(
            client=client,
            options=sync_options,
            follow=FollowOptions(
                interval=settings.SYNC_INTERVAL,
                debounce=settings.SYNC_FOLLOW_DEBOUNCE,
                max_wait=settings.SYNC_FOLLOW_MAX_WAIT,
                backoff_max=settings.SYNC_FOLLOW_BACKOFF_MAX,
            ),
            say=self._say,
            on_report=self._write_run,
            on_failure=lambda failed: self._say(f"FAILED {failed}"),
        )
        try:
            follower.run_until_signalled()
        except TargetChanged as exc:
            raise CommandError(f"Sync failed: {exc}", returncode=EXIT_FAILED) from None
        if follower.held_lock:
            self._say(
                f"Stopped ({follower.stop_reason}) after {follower.runs} runs; "
                "the run lock is released"
            )
        else:
            self._say(f"Stopped ({follower.stop_reason}) as a standby: it never held the run lock")

    def _discard(self, filters: ParkedFilter, *, confirmed: bool) -> None:
        """Ask (unless --yes), then record that the target keeps what it has for these."""
        if not confirmed:
            if not sys.stdin.isatty():
                raise CommandError(
                    "--discard-parked drops the pending changes of parked entities: confirm with "
                    "--yes (no terminal to ask on)",
                    returncode=EXIT_USAGE,
                )
            described = ", ".join(f"{k} {v}" for k, v in filters.as_dict().items()) or "all"
            answer = input(
                f"Discard the pending changes of the parked entities ({described})? [y/N] "
            )
            if answer.strip().lower() not in ("y", "yes"):
                self._say("Nothing discarded")
                return
        discarded = discard_parked(filters=filters, actor=actor())
        if not discarded:
            self._say("No parked entities to discard")
            return
        named = ", ".join(str(key) for key in discarded[:20])
        more = f" and {len(discarded) - 20} more" if len(discarded) > 20 else ""
        self._say(
            f"Discarded {len(discarded)} entities ({named}{more}): the target keeps what it has "
            "for them; their next change is sent"
        )

    def _verify(self, client: TargetApiClient, *, as_json: bool) -> None:
        try:
            with client:
                result = verify_target(client=client)
        except SyncError as exc:
            raise CommandError(f"Verify failed: {exc}", returncode=EXIT_FAILED) from None
        if as_json:
            self._say(json.dumps(result.as_dict(), indent=2))
        else:
            for line in result.lines():
                self._say(line)
        if not result.equal:
            raise CommandError(
                f"The target differs from the database in {result.total} records; "
                "sync_changes --full repairs it (docs/operations.md, verifying)",
                returncode=EXIT_FAILED,
            )

    def _write_run(self, report: SyncReport) -> None:
        """A follower's run: its summary, unless it had nothing to do."""
        if report.events_pending or report.failed or report.calls_made or report.stopped_early:
            self._write_report(report)

    def _write_report(self, report: SyncReport) -> None:
        if report.adopted_target:
            self.stdout.write(f"The sync state now describes the target {report.target}")
        for notice in report.notices:
            self.stdout.write(notice)
        self._say(report.summary())

    def _say(self, line: str) -> None:
        self.stdout.write(line)
        self.stdout.flush()

    def _check_usage(self, url: str, options: dict) -> None:
        problems = []
        if problem := url_problem(url):
            problems.append(f"--url {problem}")
        if options["concurrency"] < 1:
            problems.append("--concurrency must be at least 1")
        if options["batch_size"] < 1:
            problems.append("--batch-size must be at least 1")
        if not math.isfinite(options["max_rps"]):
            problems.append(f"--max-rps must be a finite number, got {options['max_rps']!r}")
        elif options["max_rps"] < 0:
            problems.append("--max-rps must be 0 (unlimited) or more")
        if options["timeout"] <= 0:
            problems.append("--timeout must be more than 0")
        elif problem := seconds_problem(options["timeout"]):
            problems.append(f"--timeout {problem}")
        if options["time_budget"] < 0:
            problems.append("--time-budget must be 0 (no limit) or more")
        elif problem := seconds_problem(options["time_budget"]):
            problems.append(f"--time-budget {problem}")
        if options["follow"] and (options["dry_run"] or options["full"]):
            problems.append("--follow cannot go with --dry-run or --full")
        parked_action = options["retry_parked"] or options["discard_parked"]
        if options["retry_parked"] and options["discard_parked"]:
            problems.append("--retry-parked and --discard-parked: one or the other")
        if options["discard_parked"] and any(
            options[name] for name in ("full", "dry_run", "follow", "verify")
        ):
            problems.append("--discard-parked goes alone: not with --full, --dry-run or --follow")
        for name in ("kind", "status", "older_than"):
            if options[name] is not None and not parked_action:
                problems.append(
                    f"--{name.replace('_', '-')} goes with --retry-parked or --discard-parked"
                )
        if options["yes"] and not options["discard_parked"]:
            problems.append("--yes goes with --discard-parked")
        if options["status"] is not None and status_problem(options["status"]):
            problems.append(f"--status {status_problem(options['status'])}")
        if options["older_than"] is not None and age_problem(options["older_than"]):
            problems.append(f"--older-than {age_problem(options['older_than'])}")
        if options["retry_parked"] and options["dry_run"]:
            problems.append("--retry-parked changes the database: it cannot go with --dry-run")
        if options["verify"] and any(
            options[name] for name in ("full", "dry_run", "follow", "retry_parked")
        ):
            problems.append(
                "--verify goes alone: not with --full, --dry-run, --follow or --retry-parked"
            )
        if options["json"] and not options["verify"]:
            problems.append("--json goes with --verify")
        if options["allow_deletes"] and not options["full"]:
            problems.append("--allow-deletes goes with --full")
        if options["entity"] and not parked_action:
            problems.append("--entity goes with --retry-parked or --discard-parked")
        problems += [f"--entity {p}" for p in map(entity_problem, options["entity"]) if p]
        if problems:
            raise CommandError("; ".join(problems), returncode=EXIT_USAGE)


def _sync_options(options: dict) -> SyncOptions:
    return SyncOptions(
        concurrency=options["concurrency"],
        batch_size=options["batch_size"],
        max_attempts=settings.SYNC_MAX_ATTEMPTS,
        time_budget=options["time_budget"],
        cascade_deletes=settings.SYNC_TARGET_CASCADES,
        max_foreign_deletes=None if options["allow_deletes"] else settings.SYNC_FULL_MAX_DELETES,
    )


def _client(url: str, options: dict) -> TargetApiClient:
    return TargetApiClient.from_settings(
        url=url,
        timeout=options["timeout"],
        max_rps=options["max_rps"],
        pool_size=max(10, options["concurrency"]),
    )


def _stopped(received: StopRequest, report: SyncReport | None = None) -> str:
    """The one line of a run a signal stopped: what it delivered, and that the rest waits."""
    if report is None:
        return f"Stopped ({received.reason}) before any call; everything stays pending"
    calls = report.calls
    return (
        f"Stopped ({received.reason}) after {report.duration:.1f} s: {report.entities_synced} "
        f"entities synced with {report.calls_made} calls ({calls[Op.CREATE]} created, "
        f"{calls[Op.UPDATE]} updated, {calls[Op.DELETE]} deleted); the calls under way were "
        "recorded, the rest stays pending for the next run"
    )


def _unparked(entities: list) -> str:
    if not entities:
        return "No parked entities to retry"
    named = ", ".join(str(key) for key in entities[:20])
    more = f" and {len(entities) - 20} more" if len(entities) > 20 else ""
    return f"Un-parked {len(entities)} entities ({named}{more}): this run sends them"
