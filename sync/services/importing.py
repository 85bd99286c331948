"""The initial import: copy the target's posts and comments into an empty database, ids kept."""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.core.management.color import no_style
from django.db import connection, models, transaction
from django.utils import timezone
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.fields import SkipField, empty
from rest_framework.validators import ProhibitSurrogateCharactersValidator
from tqdm import tqdm

from news.models import Comment, Post
from news.serializers import CommentSerializer, PostSerializer
from sync.batching import chunked
from sync.client import TargetApiClient
from sync.errors import SyncError
from sync.models import EntitySyncState
from sync.planner import Kind
from sync.recording import recording_disabled
from sync.target import MODELS, TABLES, parent_remote_id, record_hash, to_record

MAX_PROBLEMS_SHOWN = 10


class ImportRefused(SyncError):
    """The database already holds posts or comments."""


class ImportValidationError(SyncError):
    """Some records from the target break the API's rules; `problems` lists the first ones."""

    def __init__(self, problems: Sequence[RecordProblem], total: int) -> None:
        self.problems = list(problems)
        self.total = total
        lines = [f"{_count(total, 'problem')} in the target's data; nothing was imported:"]
        lines += [str(problem) for problem in self.problems]
        if total > len(self.problems):
            lines.append(f"... and {total - len(self.problems)} more")
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class RecordProblem:
    collection: str
    position: int
    record_id: Any
    field: str
    message: str

    def __str__(self) -> str:
        if _is_integer(self.record_id):
            where = f"id={self.record_id}"
        elif self.record_id is None:
            where = f"record #{self.position} (no id)"
        else:
            where = f"record #{self.position} (id={json.dumps(self.record_id)})"
        return f"{self.collection} {where}, field {self.field}: {self.message}"


@dataclass(frozen=True)
class ImportReport:
    source: str
    posts: int
    comments: int
    seconds: float
    fetch_seconds: float
    check_seconds: float
    write_seconds: float

    def __str__(self) -> str:
        return (
            f"Imported {_count(self.posts, 'post')} and {_count(self.comments, 'comment')} "
            f"from {self.source} in {self.seconds:.1f} s"
        )


def import_initial_data(
    *,
    client: TargetApiClient,
    progress: bool = False,
    batch_size: int = 1000,
    max_problems: int = MAX_PROBLEMS_SHOWN,
) -> ImportReport:
    """Read every post and comment from the target and insert them as they are, in one go.

    Refuses a database that already has posts or comments. Every record is checked with the
    API's rules before anything is written; the rows are then inserted in one transaction with
    change recording off (they already exist on the target) and the id sequences are moved past
    the largest imported id, so rows created later through the API get fresh ids.
    """
    started = time.perf_counter()
    _refuse_unless_empty()
    raw_posts = client.list("posts")
    raw_comments = client.list("comments")
    fetched = time.perf_counter()

    with _progress_bar(progress, len(raw_posts) + len(raw_comments), "Checking") as bar:
        posts, comments = _clean_records(raw_posts, raw_comments, bar, max_problems)
    del raw_posts, raw_comments
    checked = time.perf_counter()

    with _progress_bar(progress, 2 * (len(posts) + len(comments)), "Importing") as bar:
        _write(posts, comments, bar, batch_size)
    finished = time.perf_counter()
    return ImportReport(
        source=client.base_url,
        posts=len(posts),
        comments=len(comments),
        seconds=finished - started,
        fetch_seconds=fetched - started,
        check_seconds=checked - fetched,
        write_seconds=finished - checked,
    )


# --- Checking ------------------------------------------------------------------------------------


class TargetIdField(serializers.IntegerField):
    """An id as the target sends it: a JSON integer (not "7", 7.0 or true)."""

    def to_internal_value(self, data):
        if not _is_integer(data):
            self.fail("invalid")
        return data  # what IntegerField makes of an int, without its text round trip


class _FastSurrogateValidator(ProhibitSurrogateCharactersValidator):
    """DRF's rule and message, with one regex search instead of a Python loop per character."""

    surrogates = re.compile("[\ud800-\udfff]")

    def __call__(self, value) -> None:
        found = self.surrogates.search(str(value))
        if found:
            raise ValidationError(
                self.message.format(code_point=ord(found.group())), code=self.code
            )


class _TargetRecordMixin:
    """The API serializer's fields, plus the ids the target decides, which the API never takes."""

    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.IntegerField: TargetIdField,
    }
    id_fields: dict[str, models.Field]

    def get_fields(self):
        fields = super().get_fields()
        for name, model_field in self.id_fields.items():
            fields[name] = TargetIdField(min_value=1, validators=list(model_field.validators))
        return fields


class PostRecordSerializer(_TargetRecordMixin, PostSerializer):
    id_fields = {"id": Post._meta.pk}

    class Meta(PostSerializer.Meta):
        fields = ["id", "user_id", "title", "body"]
        read_only_fields = []


class CommentRecordSerializer(_TargetRecordMixin, CommentSerializer):
    # The post is looked up among the imported posts, not in the (empty) database.
    id_fields = {"id": Comment._meta.pk, "post_id": Post._meta.pk}

    class Meta(CommentSerializer.Meta):
        fields = ["id", "post_id", "name", "email", "body"]


class _RecordChecker:
    """Checks records field by field with a serializer's fields and hooks, built once.

    A serializer per record would be exact too, but costs ten times more on 100,000 rows;
    this runs the same field validation, `validate_<field>` hooks and `validate()`.
    """

    def __init__(
        self, collection: str, serializer: serializers.Serializer, names: dict[str, str]
    ) -> None:
        self.collection = collection
        self.serializer = serializer
        self.fields = []
        for target_name, field_name in names.items():
            field = serializer.fields[field_name]
            field.validators = [
                _FastSurrogateValidator()
                if isinstance(validator, ProhibitSurrogateCharactersValidator)
                else validator
                for validator in field.validators
            ]
            hook = getattr(serializer, f"validate_{field_name}", None)
            self.fields.append((target_name, field_name, field, hook))

    def clean(self, position: int, record: dict[str, Any]) -> tuple[dict[str, Any], list]:
        values: dict[str, Any] = {}
        problems: list[RecordProblem] = []
        for target_name, field_name, field, hook in self.fields:
            try:
                value = field.run_validation(record.get(target_name, empty))
                values[field_name] = hook(value) if hook else value
            except SkipField:
                pass  # optional and absent: the model's default applies
            except ValidationError as exc:
                problems.append(self.problem(position, record, target_name, exc))
        if not problems:
            try:
                values = self.serializer.validate(values)
            except ValidationError as exc:
                problems.append(self.problem(position, record, "(record)", exc))
        return values, problems

    def problem(
        self, position: int, record: dict, field: str, error: ValidationError | str
    ) -> RecordProblem:
        message = error if isinstance(error, str) else _first(error)
        return RecordProblem(self.collection, position, record.get("id"), field, message)


def _clean_records(
    raw_posts: list[dict], raw_comments: list[dict], bar: tqdm, max_problems: int
) -> tuple[list[dict], list[dict]]:
    """The records as model field values, or ImportValidationError naming the first problems."""
    problems: list[RecordProblem] = []
    total = 0

    def report(found: list[RecordProblem]) -> None:
        nonlocal total
        total += len(found)
        problems.extend(found[: max(0, max_problems - len(problems))])

    post_checker = _RecordChecker(
        "posts",
        PostRecordSerializer(),
        {"id": "id", "userId": "user_id", "title": "title", "body": "body"},
    )
    comment_checker = _RecordChecker(
        "comments",
        CommentRecordSerializer(),
        {"id": "id", "postId": "post_id", "name": "name", "email": "email", "body": "body"},
    )
    post_ids_broken = False

    def report_posts(found: list[RecordProblem]) -> None:
        nonlocal post_ids_broken
        post_ids_broken = post_ids_broken or any(problem.field == "id" for problem in found)
        report(found)

    posts = _clean_collection(post_checker, raw_posts, bar, report_posts)
    # Posts with other problems still count as present, so their comments add no noise; when a
    # post id itself is broken, it is the likely cause of "missing" posts and is reported alone.
    post_ids = None if post_ids_broken else {record["id"] for record in raw_posts}
    comments = _clean_collection(comment_checker, raw_comments, bar, report, post_ids=post_ids)
    if total:
        raise ImportValidationError(problems, total)
    return posts, comments


def _clean_collection(
    checker: _RecordChecker,
    records: list[dict],
    bar: tqdm,
    report: Callable[[list[RecordProblem]], None],
    *,
    post_ids: set[int] | None = None,
) -> list[dict]:
    """Checks each record, that no id repeats and, given `post_ids`, that each post exists."""
    cleaned: list[dict] = []
    first_position: dict[int, int] = {}
    for position, record in enumerate(records, start=1):
        values, problems = checker.clean(position, record)
        record_id = values.get("id")
        if record_id is not None:
            if record_id in first_position:
                message = f"Duplicate id (also record #{first_position[record_id]})."
                problems.append(checker.problem(position, record, "id", message))
            else:
                first_position[record_id] = position
        if not problems and post_ids is not None and values["post_id"] not in post_ids:
            message = f"Post {values['post_id']} is not among the target's posts."
            problems.append(checker.problem(position, record, "postId", message))
        if problems:
            report(problems)
        else:
            cleaned.append(values)
        if position % 1000 == 0:
            bar.update(1000)
    bar.update(len(records) % 1000)
    return cleaned


# --- Writing -------------------------------------------------------------------------------------


def _refuse_unless_empty() -> None:
    posts, comments = Post.objects.count(), Comment.objects.count()
    if posts or comments:
        raise ImportRefused(
            f"The database already has {_count(posts, 'post')} and {_count(comments, 'comment')}; "
            "the initial import only runs on an empty database. Nothing was changed."
        )


def _write(posts: list[dict], comments: list[dict], bar: tqdm, batch_size: int) -> None:
    postgres = connection.vendor == "postgresql"
    with transaction.atomic(), recording_disabled():
        if postgres:
            # Keep API writes out until the import commits; reads go on as usual.
            tables = ", ".join(connection.ops.quote_name(m._meta.db_table) for m in (Post, Comment))
            with connection.cursor() as cursor:
                cursor.execute(f"LOCK TABLE {tables} IN SHARE ROW EXCLUSIVE MODE")
        _refuse_unless_empty()
        # What the target holds of each row, so the sync knows it is there and unchanged.
        EntitySyncState.objects.filter(entity_table__in=TABLES.values()).delete()
        states = _delivered_states(posts, comments)
        for model, rows in ((Post, posts), (Comment, comments), (EntitySyncState, states)):
            if postgres and _has_psycopg3_copy():
                _copy_rows(model, rows, bar, batch_size)
            else:
                for batch in chunked(rows, batch_size):
                    model.objects.bulk_create([model(**values) for values in batch])
                    bar.update(len(batch))
        _reset_sequences()


def _delivered_states(posts: list[dict], comments: list[dict]) -> list[dict]:
    """One sync state per imported row: on the target under its own id, as imported."""
    states = []
    for kind, rows in ((Kind.POST, posts), (Kind.COMMENT, comments)):
        model = MODELS[kind]
        for values in rows:
            record = to_record(model(**values), remote_id=values["id"])
            states.append(
                {
                    "entity_table": TABLES[kind],
                    "entity_pk": values["id"],
                    "remote_id": values["id"],
                    "delivered_hash": record_hash(record),
                    "remote_parent_id": parent_remote_id(record),
                }
            )
    return states


def _copy_rows(model: type[models.Model], rows: list[dict], bar: tqdm, batch_size: int) -> None:
    """Write the rows bulk_create would write, with PostgreSQL's COPY: several times faster.

    bulk_create spends most of its time preparing each value of each row in Python (120,000
    rows: about 9 s against about 1 s for COPY). Every column gets what bulk_create would give
    it: the checked value, else the field's default; auto_now(_add) columns get the import time.
    """
    now = timezone.now()
    # An auto id that the rows leave out is the database's to give.
    fields = [
        field
        for field in model._meta.concrete_fields
        if not (field.primary_key and rows and field.attname not in rows[0])
    ]
    fill = {
        field.attname: now
        if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False)
        else field.get_default()
        for field in fields
    }
    names = [field.attname for field in fields]
    quote = connection.ops.quote_name
    sql = (
        f"COPY {quote(model._meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
        "FROM STDIN"
    )
    with connection.cursor() as cursor, cursor.copy(sql) as copy:
        for batch in chunked(rows, batch_size):
            for values in batch:
                copy.write_row([values.get(name, fill[name]) for name in names])
            bar.update(len(batch))


def _has_psycopg3_copy() -> bool:
    from django.db.backends.postgresql.psycopg_any import is_psycopg3

    return is_psycopg3


def _reset_sequences() -> None:
    """Move the id sequences past the largest imported id (a no-op where the database does)."""
    statements = connection.ops.sequence_reset_sql(no_style(), [Post, Comment])
    with connection.cursor() as cursor:
        for sql in statements:
            cursor.execute(sql)


# --- Small helpers -------------------------------------------------------------------------------


def _progress_bar(enabled: bool, total: int, description: str) -> tqdm:
    return tqdm(
        total=total,
        desc=description,
        unit=" rows",
        file=sys.stdout,
        leave=False,
        disable=not enabled,
    )


def _first(exc: ValidationError) -> str:
    """The first message of a DRF ValidationError, whatever its shape."""
    detail = exc.detail
    while isinstance(detail, dict | list):
        if not detail:
            return "Invalid value."
        detail = next(iter(detail.values())) if isinstance(detail, dict) else detail[0]
    return str(detail)


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"
