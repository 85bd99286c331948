"""Reading settings from the environment: each reader fails with one line naming the variable."""

import math
import os
import re
from pathlib import Path
from urllib.parse import SplitResult, parse_qs, urlsplit

from django.core.exceptions import ImproperlyConfigured
from dotenv import load_dotenv

from sync.errors import misspelled_url, without_password

PROJECT_DIR = Path(__file__).resolve().parent.parent

# The secret key .env.example ships with: a copied template must never sign anything.
ENV_EXAMPLE_SECRET_KEY = "change-me-to-a-long-random-string"

# The most a number read here may be, unless its setting says another: past these, a value is
# no date (an age, a lifetime), no time a thread or socket can wait, or no database integer.
INTEGER_MAX = 2**31 - 1
SECONDS_MAX = 86_400.0  # a day
MINUTES_MAX = 525_600  # a year
DAYS_MAX = 36_500  # a hundred years


def load_env_file() -> Path | None:
    """Fill in, from the project's .env, the variables the environment leaves unset.

    DJANGO_ENV_FILE names another file; set to an empty value, no file is read. Without the
    project's .env the defaults apply; a file DJANGO_ENV_FILE names must be there (a mistyped
    name would run on the defaults: SQLite, the public target). Returns the file read, if any.
    """
    named = os.environ.get("DJANGO_ENV_FILE")
    if named == "":
        return None
    path = Path(named) if named is not None else PROJECT_DIR / ".env"
    if not path.is_file():
        if named is not None:
            raise ImproperlyConfigured(
                f"DJANGO_ENV_FILE names {named}, which is not a file: name the file to read, "
                "or set it empty to read none"
            )
        return None
    # override=False: a variable set in the environment (or on a make command line) wins.
    try:
        load_dotenv(path, override=False, encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ImproperlyConfigured(
            f"{path} is not UTF-8 text (byte {exc.start + 1}): save it as UTF-8, or name "
            "another file with DJANGO_ENV_FILE"
        ) from None
    return path


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false, yes/no), got {raw!r}")


def env_int(name: str, default: int, *, minimum: int = 0, maximum: int = INTEGER_MAX) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value}")
    if value > maximum:
        raise ImproperlyConfigured(f"{name} must be at most {maximum}, got {value}")
    return value


def env_float(
    name: str, default: float, *, minimum: float = 0.0, maximum: float = SECONDS_MAX
) -> float:
    """A finite number: of seconds, up to a day, unless `maximum` says otherwise."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, got {raw!r}") from None
    if not math.isfinite(value):
        raise ImproperlyConfigured(f"{name} must be a finite number, got {raw!r}")
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value}")
    if value > maximum:
        raise ImproperlyConfigured(f"{name} must be at most {maximum:g}, got {raw.strip()}")
    return value


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    """One of `choices` (written in any case), as `choices` writes it."""
    value = os.environ.get(name, "").strip() or default
    for choice in choices:
        if value.upper() == choice.upper():
            return choice
    raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, got {value!r}")


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def _split(value: str) -> SplitResult | None:
    """The parts of a URL, or None for one that does not parse: a bracket left open
    (http://[::1), a port that is not a number from 0 to 65535."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018  # read only to be checked
    except ValueError:
        return None
    return parts


def env_url(name: str, default: str) -> str:
    value = os.environ.get(name, default).strip().rstrip("/")
    if misspelled := misspelled_url(value):
        raise ImproperlyConfigured(f"{name} {misspelled}")
    parts, shown = _split(value), without_password(value)
    if parts is None or parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ImproperlyConfigured(f"{name} must be an http(s) URL, got {shown!r}")
    if parts.query or parts.fragment or value.endswith(("?", "#")):
        # The calls' paths go after it: /posts would follow a query, or be lost in a fragment.
        raise ImproperlyConfigured(
            f"{name} must be a base URL, without a ?query or #fragment, got {shown!r}"
        )
    return value


def env_database_url(name: str, default: str, *, password_name: str) -> str:
    """A database URL; refused when a password in it holds `/`, `?` or `#` as they are, which
    would cut the URL short there (a wrong host, or none)."""
    value = os.environ.get(name, default).strip()
    scheme, _, rest = value.partition("://")
    cut = re.search(r"[/?#]", rest)
    authority, after = (rest[: cut.start()], rest[cut.start() :]) if cut else (rest, "")
    path = re.split(r"[?#]", after, maxsplit=1)[0]
    # An @ after the host's part: the password went on past a / (or ?, #) it holds.
    if not scheme.startswith("sqlite") and "@" in rest and ("@" not in authority or "@" in path):
        raise ImproperlyConfigured(
            f"{name} holds a password with /, ? or # as they are: set the password in "
            f"{password_name} instead (taken as it is), or percent-encode it in {name}"
        )
    return value


def env_redis_url(name: str) -> str:
    """A redis://, rediss:// or unix:// URL, or "" when unset."""
    value = os.environ.get(name, "").strip()
    if not value:
        return ""
    parts = _split(value)
    if (
        parts is None
        or parts.scheme not in {"redis", "rediss", "unix"}
        or not (parts.netloc or parts.path)
    ):
        raise ImproperlyConfigured(
            f"{name} must be a redis:// URL such as redis://127.0.0.1:6379/0, got {value!r}"
        )
    # The database is a number (redis-py would take database 0 for one that is not).
    database = parts.path.strip("/") if parts.scheme != "unix" else ""
    databases = [database] if database else []
    databases += parse_qs(parts.query).get("db", [])
    if not all(db.isascii() and db.isdigit() for db in databases):
        raise ImproperlyConfigured(
            f"{name} must name its database by number (redis://127.0.0.1:6379/0), got {value!r}"
        )
    return value


def env_rate(name: str, default: str) -> str:
    """A DRF throttle rate such as 10/min: a whole number, a slash, then s, m, h or d."""
    value = os.environ.get(name, default).strip()
    count, _, period = value.partition("/")
    if not count.isdigit() or period[:1] not in {"s", "m", "h", "d"}:
        raise ImproperlyConfigured(
            f"{name} must be a rate such as 10/min or 100/hour, got {value!r}"
        )
    return value
