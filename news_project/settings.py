"""Settings for the news service: every deploy-time value comes from the environment."""

import os
import warnings
from datetime import timedelta
from pathlib import Path

import dj_database_url
from corsheaders.defaults import default_headers as default_cors_headers
from django.core.exceptions import ImproperlyConfigured

from news_project.env import (
    DAYS_MAX,
    ENV_EXAMPLE_SECRET_KEY,
    MINUTES_MAX,
    env_bool,
    env_choice,
    env_database_url,
    env_float,
    env_int,
    env_list,
    env_rate,
    env_redis_url,
    env_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent


# --- Core ----------------------------------------------------------------------------------------

DEBUG = env_bool("DJANGO_DEBUG", False)

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if SECRET_KEY == ENV_EXAMPLE_SECRET_KEY:
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY is still the placeholder of .env.example; set a long random value, "
        "e.g. the output of: python3 -c 'import secrets; print(secrets.token_urlsafe(50))'"
    )
if not SECRET_KEY.strip():  # spaces alone are no key
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off "
            "(in the environment or .env; or set DJANGO_DEBUG=1 for local development)"
        )
    SECRET_KEY = "django-insecure-development-only-key-do-not-use-in-production"

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")

# --- HTTPS ---------------------------------------------------------------------------------------
# DJANGO_HTTPS=1 when clients reach the service over TLS through a proxy that sets
# X-Forwarded-Proto (and strips a client's own): links say https, plain http is redirected (but
# /health/, which the container's own check calls over http), cookies are secure, HSTS is sent.

HTTPS = env_bool("DJANGO_HTTPS", False)
HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 31536000, minimum=1)
if HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    SECURE_REDIRECT_EXEMPT = [r"^health/$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = HSTS_SECONDS
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

INSTALLED_APPS = [
    # Before django.contrib.auth, whose createsuperuser it overrides (the first app wins).
    "accounts",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "corsheaders",
    "rest_framework",
    "rest_framework_simplejwt",
    "rest_framework_simplejwt.token_blacklist",
    "axes",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "news",
    "sync",
    # The project's own commands (check_env), for settings rather than any one app.
    "news_project",
]

MIDDLEWARE = [
    # CORS first, as django-cors-headers asks: its headers go on every answer, a refusal too.
    "news_project.headers.RefusingCorsMiddleware",
    # gzip for answers of 200 bytes or more when the client accepts it (Vary: Accept-Encoding);
    # before the ETag, which it makes weak on a compressed answer.
    "django.middleware.gzip.GZipMiddleware",
    # ETag on every GET and HEAD answer, and 304 Not Modified for a client that sends it back.
    "news_project.headers.ConditionalMiddleware",
    "news_project.headers.ReadCacheControl",
    "django.middleware.security.SecurityMiddleware",
    "news_project.static.CollectedFirstWhiteNoise",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "news_project.middleware.CanonicalUrlMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "news_project.middleware.CacheUnavailableMiddleware",
    "news_project.middleware.JsonNotAllowedMiddleware",
    # Last, as django-axes asks: turns an admin login lockout into its answer.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "news_project.urls"
# Every error is JSON, the CSRF failure (e.g. an admin form posted without its token) included.
CSRF_FAILURE_VIEW = "news_project.views.csrf_failure"
WSGI_APPLICATION = "news_project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database ------------------------------------------------------------------------------------
# DATABASE_URL, e.g. postgres://user:password@host:5432/news; default: SQLite in the project.
# DATABASE_PASSWORD, when set, is the password as it is (any character, no encoding), over the
# URL's own: docker compose passes POSTGRES_PASSWORD that way.

try:
    DATABASES = {
        "default": dj_database_url.parse(
            env_database_url(
                "DATABASE_URL",
                f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
                password_name="DATABASE_PASSWORD",
            ),
            conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
            conn_health_checks=True,
        )
    }
except ValueError as exc:
    raise ImproperlyConfigured(f"DATABASE_URL is not a valid database URL: {exc}") from None
if DATABASES["default"]["ENGINE"] not in {
    "django.db.backends.postgresql",
    "django.db.backends.sqlite3",
}:
    raise ImproperlyConfigured(
        "DATABASE_URL must be a postgres:// or sqlite:// URL: the service runs on PostgreSQL "
        "or SQLite"
    )
if not DATABASES["default"].get("NAME"):
    raise ImproperlyConfigured(
        "DATABASE_URL must name the database, e.g. postgres://user@host:5432/news"
    )
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # The same backend, with a health check that needs no round trip while the connection is
    # quiet (news_project/postgresql/base.py).
    DATABASES["default"]["ENGINE"] = "news_project.postgresql"
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The same backend, which commands that need the database tell not to make a file that is
    # not there (news_project/sqlite3/base.py).
    DATABASES["default"]["ENGINE"] = "news_project.sqlite3"
if _password := os.environ.get("DATABASE_PASSWORD", ""):
    DATABASES["default"]["PASSWORD"] = _password
# A request runs in one transaction unless its view opts out: the admin's writes and their change
# events commit or roll back together. The API's viewsets opt out and run each write in a
# transaction of their own instead (news.views.AtomicWritesMixin: the same guarantee, and reads
# without BEGIN and COMMIT); the health, metrics and login views opt out too.
DATABASES["default"]["ATOMIC_REQUESTS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache ---------------------------------------------------------------------------------------
# Throttle counters live here. "locmem" is per process; "database" (table django_cache, made by
# manage.py createcachetable) is shared by every server worker, so a limit holds across them.

_CACHE_BACKENDS = {
    "locmem": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "database": {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": "django_cache",
    },
}
_cache = os.environ.get("DJANGO_CACHE", "locmem").strip().lower() or "locmem"
if _cache not in _CACHE_BACKENDS:
    raise ImproperlyConfigured(f"DJANGO_CACHE must be locmem or database, got {_cache!r}")
CACHES = {"default": _CACHE_BACKENDS[_cache]}

# Anonymous reads of /news/ answered from Redis, exact because every write replaces the
# generation of its table when it commits (news/cache/). Unset: every read asks the database,
# but for the answers each worker keeps under the database's snapshot (NEWS_SNAPSHOT_CACHE).
REDIS_URL = env_redis_url("REDIS_URL")
# How long an entry lives at most (it dies sooner, at the next write of a table it reads), and
# the largest answer kept (bigger ones, such as ?all=true over many rows, are always streamed).
NEWS_CACHE_TTL = env_int("NEWS_CACHE_TTL", 300, minimum=1)
NEWS_CACHE_MAX_BYTES = env_int("NEWS_CACHE_MAX_BYTES", 1048576, minimum=1)
# Without REDIS_URL, under `serve` on PostgreSQL: each worker keeps anonymous answers in memory,
# under the database snapshot they were read in (news/cache/snapshots.py). 0 turns it off.
NEWS_SNAPSHOT_CACHE = env_bool("NEWS_SNAPSHOT_CACHE", True)

# --- Authentication ------------------------------------------------------------------------------
# django-axes first: it refuses a locked-out admin login before the password is even checked.

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Internationalisation and static files -------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# Static files are served by WhiteNoise, the collected ones (compressed) first; finders make
# them work without collectstatic too (news_project/static.py), so a missing STATIC_ROOT
# (development, tests) is expected and not worth a warning.
WHITENOISE_USE_FINDERS = True
warnings.filterwarnings("ignore", message="No directory at")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- HTTP: browsers of other origins, and caches ------------------------------------------------

# Origins (scheme://host[:port]) whose pages may call the API from a browser; none by default.
CORS_ALLOWED_ORIGINS = env_list("DJANGO_CORS_ALLOWED_ORIGINS", "")
CORS_URLS_REGEX = r"^/(news|api)/"
CORS_ALLOW_HEADERS = (*default_cors_headers, "if-match", "if-none-match")
CORS_EXPOSE_HEADERS = ["ETag", "Last-Modified", "Location", "Retry-After"]
# Seconds an anonymous read of /news/ may be reused by a browser or a proxy without asking again
# (Cache-Control: public, max-age); 0: it asks each time, and the ETag makes that cheap.
NEWS_HTTP_MAX_AGE = env_int("NEWS_HTTP_MAX_AGE", 0)

# --- REST API ------------------------------------------------------------------------------------

REST_FRAMEWORK = {
    # simplejwt's, which also stamps a token read's user in the read cache (news/cache/tokens.py)
    "DEFAULT_AUTHENTICATION_CLASSES": ["news.cache.tokens.JWTAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticatedOrReadOnly"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["news_project.parsers.JSONParser"],
    # ?format= that an endpoint does not have: a 406 naming those it has (not DRF's 404).
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "news_project.negotiation.StrictFormatNegotiation",
    "DEFAULT_PAGINATION_CLASS": "news.pagination.NewsPagination",
    "PAGE_SIZE": env_int("NEWS_PAGE_SIZE", 20, minimum=1),
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "news.filters.StrictOrderingFilter",
    ],
    "EXCEPTION_HANDLER": "news_project.exceptions.exception_handler",
    "DEFAULT_THROTTLE_RATES": {"token": env_rate("JWT_TOKEN_THROTTLE_RATE", "10/min")},
    # Throttles count per client address; X-Forwarded-For is trusted only behind this many proxies.
    "NUM_PROXIES": env_int("DJANGO_NUM_PROXIES", 0),
    "DEFAULT_SCHEMA_CLASS": "news_project.schema.AutoSchema",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(
        minutes=env_int("JWT_ACCESS_MINUTES", 15, minimum=1, maximum=MINUTES_MAX)
    ),
    "REFRESH_TOKEN_LIFETIME": timedelta(
        days=env_int("JWT_REFRESH_DAYS", 1, minimum=1, maximum=DAYS_MAX)
    ),
    "AUTH_HEADER_TYPES": ("Bearer",),
    # Every refresh hands out a new refresh token; the one used is blacklisted, so a stolen
    # refresh token that is used twice fails once its owner or the thief has used it.
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    # Tokens carry a hash of the password hash: a password change ends every earlier token.
    "CHECK_REVOKE_TOKEN": True,
    # A token names its user by a positive integer id, or is refused (accounts.tokens).
    "AUTH_TOKEN_CLASSES": ("accounts.tokens.AccessToken",),
    "TOKEN_REFRESH_SERIALIZER": "accounts.tokens.TokenRefreshSerializer",
    "TOKEN_VERIFY_SERIALIZER": "accounts.tokens.TokenVerifySerializer",
    "TOKEN_BLACKLIST_SERIALIZER": "accounts.tokens.TokenBlacklistSerializer",
}

# django-axes guards the admin login (the API login has its throttle above): after
# DJANGO_ADMIN_LOGIN_ATTEMPTS failures from one client address, that address is locked out of
# the admin login for DJANGO_ADMIN_LOCKOUT_MINUTES, each further failure starting the wait again.
AXES_FAILURE_LIMIT = env_int("DJANGO_ADMIN_LOGIN_ATTEMPTS", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(
    minutes=env_int("DJANGO_ADMIN_LOCKOUT_MINUTES", 15, minimum=1, maximum=MINUTES_MAX)
)
AXES_LOCKOUT_PARAMETERS = ["ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_WHITELIST_CALLABLE = "accounts.admin_login.outside_the_admin"
AXES_CLIENT_IP_CALLABLE = "accounts.admin_login.client_address"
AXES_USERNAME_CALLABLE = "accounts.admin_login.attempted_username"
AXES_LOCKOUT_CALLABLE = "accounts.admin_login.lockout_response"

SPECTACULAR_SETTINGS = {
    "TITLE": "News API",
    "DESCRIPTION": "Posts and comments, kept in step with a JSONPlaceholder-compatible target.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        # Request bodies closed to fields the items do not have, as the API refuses them.
        "news_project.schema.closed_request_bodies",
    ],
}

# `?all=true` answers one server process streams at once (each holds one of its threads while
# its client reads); more are refused with 503 and Retry-After. Below `manage.py serve --threads`
# (serve refuses to start otherwise), so that threads stay free for everything else.
NEWS_MAX_STREAMS = env_int("NEWS_MAX_STREAMS", 2, minimum=1)

# Seconds a request body has to arrive in full once its headers have (news_project/bodies.py):
# later, the request is answered 408. The body is read by the server's own I/O, holding no thread.
NEWS_BODY_TIMEOUT = env_float("NEWS_BODY_TIMEOUT", 30.0, minimum=0.1)

# Author id given on the target to posts created through this API.
NEWS_NEW_POST_USER_ID = env_int("NEWS_NEW_POST_USER_ID", 99999942)

# --- Target and synchronisation -----------------------------------------------------------------

# The target's base URL. FAKE_API_URL, the name it had first, is read while TARGET_URL is unset.
TARGET_URL = (
    env_url("TARGET_URL", "https://jsonplaceholder.typicode.com")
    if "TARGET_URL" in os.environ or "FAKE_API_URL" not in os.environ
    else env_url("FAKE_API_URL", "https://jsonplaceholder.typicode.com")
)
FAKE_API_TIMEOUT = env_float("FAKE_API_TIMEOUT", 10.0, minimum=0.1)
SYNC_CONCURRENCY = env_int("SYNC_CONCURRENCY", 4, minimum=1)
SYNC_MAX_RPS = env_float("SYNC_MAX_RPS", 10.0, maximum=1e6)
SYNC_BATCH_SIZE = env_int("SYNC_BATCH_SIZE", 500, minimum=1)
SYNC_MAX_ATTEMPTS = env_int("SYNC_MAX_ATTEMPTS", 5, minimum=1)
SYNC_RETRIES = env_int("SYNC_RETRIES", 4)
SYNC_BACKOFF_FACTOR = env_float("SYNC_BACKOFF_FACTOR", 0.5)
SYNC_BACKOFF_MAX = env_float("SYNC_BACKOFF_MAX", 30.0)
# The run lock on SQLite (PostgreSQL's is an advisory lock): a file no run could open is refused
# here, in one line, rather than by a traceback at the first run.
SYNC_LOCK_FILE = os.environ.get("SYNC_LOCK_FILE", str(BASE_DIR / ".sync_changes.lock"))
if "sqlite" in DATABASES["default"]["ENGINE"] and Path(SYNC_LOCK_FILE).is_dir():
    raise ImproperlyConfigured(
        f"SYNC_LOCK_FILE must name a file, not a directory, got {SYNC_LOCK_FILE!r}"
    )
if "sqlite" in DATABASES["default"]["ENGINE"] and not Path(SYNC_LOCK_FILE).parent.is_dir():
    raise ImproperlyConfigured(
        f"SYNC_LOCK_FILE must be in a directory that exists, got {SYNC_LOCK_FILE!r}"
    )
# Seconds after which a run starts no new call (0: no limit); what is left stays pending.
SYNC_TIME_BUDGET = env_float("SYNC_TIME_BUDGET", 50.0)
# The target deletes a post's comments with the post (json-server does): no call per comment.
SYNC_TARGET_CASCADES = env_bool("SYNC_TARGET_CASCADES", False)
# A full run deletes at most this many of the target's records that no row of ours holds, unless
# run with --allow-deletes: a wrong URL must not empty someone else's target.
SYNC_FULL_MAX_DELETES = env_int("SYNC_FULL_MAX_DELETES", 10)

# --- Following the change log live (sync_changes --follow) and watching the sync -----------------

# A follower runs at least this often without any notification (and docker compose's `sync`
# service passes it on); a run starts SYNC_FOLLOW_DEBOUNCE quiet seconds after a change, at most
# SYNC_FOLLOW_MAX_WAIT after the first one; failures back off up to SYNC_FOLLOW_BACKOFF_MAX.
SYNC_INTERVAL = env_float("SYNC_INTERVAL", 60.0, minimum=1.0)
SYNC_FOLLOW_DEBOUNCE = env_float("SYNC_FOLLOW_DEBOUNCE", 0.05)
SYNC_FOLLOW_MAX_WAIT = env_float("SYNC_FOLLOW_MAX_WAIT", 0.05)
if SYNC_FOLLOW_MAX_WAIT < SYNC_FOLLOW_DEBOUNCE:
    raise ImproperlyConfigured(
        f"SYNC_FOLLOW_MAX_WAIT must be at least SYNC_FOLLOW_DEBOUNCE ({SYNC_FOLLOW_DEBOUNCE:g}), "
        f"got {SYNC_FOLLOW_MAX_WAIT:g}"
    )
SYNC_FOLLOW_BACKOFF_MAX = env_float("SYNC_FOLLOW_BACKOFF_MAX", 30.0, minimum=1.0)
# /health/sync/ answers 503 once the oldest pending event is older than this many seconds.
SYNC_HEALTH_MAX_AGE = env_float("SYNC_HEALTH_MAX_AGE", 300.0, minimum=1.0)
# GET /metrics and /health/sync/ need "Authorization: Bearer <METRICS_TOKEN>"; unset, they answer
# only with DEBUG on.
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "").strip()
if not (METRICS_TOKEN.isascii() and METRICS_TOKEN.isprintable() and " " not in METRICS_TOKEN):
    raise ImproperlyConfigured(
        "METRICS_TOKEN must be printable ASCII without spaces (it is sent in a header)"
    )

# --- Retention -----------------------------------------------------------------------------------
# What prune_events deletes (docker compose runs it daily): synced change events logged, and sync
# runs started, more than this many days ago. Pending events are never deleted; nor is the last run.

SYNC_EVENT_RETENTION_DAYS = env_int("SYNC_EVENT_RETENTION_DAYS", 30, maximum=DAYS_MAX)
SYNC_RUN_RETENTION_DAYS = env_int("SYNC_RUN_RETENTION_DAYS", 30, maximum=DAYS_MAX)

# --- Logging -------------------------------------------------------------------------------------

LOG_LEVEL = env_choice(
    "DJANGO_LOG_LEVEL", "WARNING", ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
)
# Error reports show no password of a URL in the settings (news_project/logs.py).
DEFAULT_EXCEPTION_REPORTER_FILTER = "news_project.logs.ReportFilter"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"security_without_traceback": {"()": "news_project.logs.SecurityWithoutTraceback"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "filters": ["security_without_traceback"]}
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Django's defaults give its logger a console handler of its own (in debug): without
        # one here, its messages reach only the root's, and are printed once.
        "django": {"handlers": [], "level": "INFO"},
        # urllib3 warns on every retry; the target client reports what finally failed, in one line.
        "urllib3": {"level": "ERROR"},
    },
}
