"""Checking the target's records with the API's own rules, before anything is written."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import models
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.fields import SkipField, empty
from rest_framework.validators import ProhibitSurrogateCharactersValidator
from tqdm import tqdm

from news.models import Comment, Post
from news.serializers import CommentSerializer, PostSerializer
from sync.errors import ImportValidationError
from sync.planner import Kind
from sync.target import FIELDS, MAX_REMOTE_ID_LENGTH, readable_id, remote_key, target_field


@dataclass(frozen=True)
class RecordProblem:
    resource: str
    position: int
    record_id: Any
    field: str
    message: str

    def __str__(self) -> str:
        if is_integer(self.record_id):
            where = f"id={self.record_id}"
        elif readable_id(self.record_id) is not None:
            where = f"id={json.dumps(self.record_id)}"
        elif self.record_id is None:
            where = f"record #{self.position} (no id)"
        else:
            where = f"record #{self.position} (id={json.dumps(self.record_id)})"
        return f"{self.resource} {where}, field {self.field}: {self.message}"


class JsonIntegerField(serializers.IntegerField):
    """A number as the target sends it: a JSON integer (not "7", 7.0 or true)."""

    def to_internal_value(self, data):
        if not is_integer(data):
            self.fail("invalid")
        return data  # what IntegerField makes of an int, without its text round trip


class TargetIdField(serializers.IntegerField):
    """An id as the target gives it: a JSON integer (at least 1), or a string, kept as it is.

    Not 7.0, true, null or "": json-server 1.0 and many APIs give string ids ("Q2rmeYny5Gc", a
    UUID); json-server 0.17 gives integers.
    """

    default_error_messages = {
        "invalid": (
            "An id must be a JSON integer or a string of 1 to "
            f"{MAX_REMOTE_ID_LENGTH} printable characters."
        ),
    }

    def to_internal_value(self, data):
        if readable_id(data) is None:
            self.fail("invalid")
        return data  # kept exactly: what IntegerField makes of an int, without its round trip

    def run_validators(self, value) -> None:
        if is_integer(value):  # the range checks hold for numbers only
            super().run_validators(value)


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
        models.IntegerField: JsonIntegerField,
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
        fields = list(FIELDS[Kind.POST].values())
        read_only_fields = []


class CommentRecordSerializer(_TargetRecordMixin, CommentSerializer):
    # The post is looked up among the imported posts, not in the (empty) database.
    id_fields = {"id": Comment._meta.pk, "post_id": Post._meta.pk}

    class Meta(CommentSerializer.Meta):
        fields = list(FIELDS[Kind.COMMENT].values())


class _RecordChecker:
    """Checks records field by field with a serializer's fields and hooks, built once.

    A serializer per record would be exact too, but costs ten times more on 100,000 rows;
    this runs the same field validation, `validate_<field>` hooks and `validate()`.
    """

    def __init__(
        self, resource: str, serializer: serializers.Serializer, names: dict[str, str]
    ) -> None:
        self.resource = resource
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
        return RecordProblem(self.resource, position, record.get("id"), field, message)


def clean_records(
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
        FIELDS[Kind.POST],
    )
    comment_checker = _RecordChecker(
        "comments",
        CommentRecordSerializer(),
        FIELDS[Kind.COMMENT],
    )
    post_ids_broken = False

    def report_posts(found: list[RecordProblem]) -> None:
        nonlocal post_ids_broken
        post_ids_broken = post_ids_broken or any(problem.field == "id" for problem in found)
        report(found)

    posts = _clean_resource(post_checker, raw_posts, bar, report_posts)
    # Posts with other problems still count as present, so their comments add no noise; when a
    # post id itself is broken, it is the likely cause of "missing" posts and is reported alone.
    post_ids = (
        None
        if post_ids_broken
        else {
            remote_key(value) for r in raw_posts if (value := readable_id(r.get("id"))) is not None
        }
    )
    comments = _clean_resource(comment_checker, raw_comments, bar, report, post_ids=post_ids)
    if total:
        raise ImportValidationError(problems, total)
    return posts, comments


def _clean_resource(
    checker: _RecordChecker,
    records: list[dict],
    bar: tqdm,
    report: Callable[[list[RecordProblem]], None],
    *,
    post_ids: set[str] | None = None,
) -> list[dict]:
    """Checks each record, that no id repeats and, given `post_ids`, that each post exists."""
    cleaned: list[dict] = []
    first_position: dict[str, int] = {}
    for position, record in enumerate(records, start=1):
        values, problems = checker.clean(position, record)
        record_id = values.get("id")
        if record_id is not None:
            # "7" and 7 are one record to the target.
            key = remote_key(record_id)
            if key in first_position:
                message = f"Duplicate id (also record #{first_position[key]})."
                problems.append(checker.problem(position, record, "id", message))
            else:
                first_position[key] = position
        if not problems and post_ids is not None and remote_key(values["post_id"]) not in post_ids:
            message = f"Post {values['post_id']} is not among the target's posts."
            post_field = target_field(Kind.COMMENT, "post_id")
            problems.append(checker.problem(position, record, post_field, message))
        if problems:
            report(problems)
        else:
            cleaned.append(values)
        if position % 1000 == 0:
            bar.update(1000)
    bar.update(len(records) % 1000)
    return cleaned


def _first(exc: ValidationError) -> str:
    """The first message of a DRF ValidationError, whatever its shape."""
    detail = exc.detail
    while isinstance(detail, dict | list):
        if not detail:
            return "Invalid value."
        detail = next(iter(detail.values())) if isinstance(detail, dict) else detail[0]
    return str(detail)


def is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
