"""Plain helpers the test suites share: rows made directly, and manage.py in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys

from django.conf import settings
from django.db import connection

from news.models import Comment, Post


def make_post(*, created_by=None, user_id: int = 1, title: str = "A title", body: str = "A body"):
    return Post.objects.create(created_by=created_by, user_id=user_id, title=title, body=body)


def make_comment(
    post: Post | None = None,
    *,
    created_by=None,
    name: str = "A name",
    email: str = "a@example.com",
    body: str = "A comment",
) -> Comment:
    return Comment.objects.create(
        post=post or make_post(), created_by=created_by, name=name, email=email, body=body
    )


def database_url() -> str:
    """A DATABASE_URL that reaches the database the tests run on."""
    db = connection.settings_dict
    if connection.vendor != "postgresql":
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] or ""
    if db.get("PASSWORD"):
        auth += f":{db['PASSWORD']}"
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def manage_env(*, clean: bool = False, **env: str) -> dict[str, str]:
    """The environment of a manage.py subprocess: the suite's, on its database; or, `clean`,
    only PATH and the variables given."""
    if clean:
        return {"PATH": os.environ.get("PATH", ""), **env}
    base = dict(os.environ)
    base.update(
        DJANGO_SETTINGS_MODULE="news_project.settings",
        DJANGO_SECRET_KEY=settings.SECRET_KEY,
        PYTHONUNBUFFERED="1",
    )
    if connection.vendor == "postgresql":
        base["DATABASE_URL"] = database_url()
    return {**base, **env}


def run_manage(*args: str, clean: bool = False, **env: str) -> subprocess.CompletedProcess:
    """Run manage.py with these arguments to the end and capture what it printed."""
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env=manage_env(clean=clean, **env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def start_manage(*args: str, **env: str) -> subprocess.Popen:
    """Start manage.py in the background, its output captured."""
    return subprocess.Popen(
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env=manage_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
