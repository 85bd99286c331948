"""Reads with a token, answered from the read cache: the token checked in process, the user's
state from a stamp in Redis.

A token read is answered from the cache only when all of these hold, checked before Django runs:
- the token is one simplejwt's authentication takes (signature, expiry, type: the same code, see
  `holder`);
- Redis holds the user's *stamp*: the user's state as the API last checked it against the database
  (exists, active, the password the token's claim was made from), left by `JWTAuthentication`
  on a token read that reached Django;
- the stamp was made under the user's current generation. Every save or delete of the user (a
  password change, a deactivation, a deletion) replaces that generation once it commits, and
  keeps readers off the cache while it is in flight, exactly as a write of posts does for their
  answers (news/cache/writes.py). So a revoked token is refused on its next request.

Otherwise the read goes to Django, which checks the token against the database as it always
did, answers 401 if it must, and stamps the user when it passes. A change of users made without
their signals (QuerySet.update, raw SQL) is seen once the stamp expires (USER_STAMP_TTL).

Requests that reach Django with a token (writes, reads the cache misses) use the same stamp: while
it holds, the process takes the user it read before (JWTAuthentication, Users).
"""

from __future__ import annotations

import copy
import hashlib
import threading
import time
from typing import NamedTuple

from django.contrib.auth import get_user_model
from django.core.signals import setting_changed
from django.db import connections
from django.db.models.signals import post_delete, post_migrate, post_save, pre_delete, pre_save
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.authentication import AUTH_HEADER_TYPE_BYTES
from rest_framework_simplejwt.authentication import JWTAuthentication as SimpleJWTAuthentication
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import Token

from news.cache.store import get_store, new_token
from news.cache.writes import tables_written

# The Authorization schemes simplejwt takes (AUTH_HEADER_TYPES), by their lower-case names.
_SCHEMES = {scheme.lower(): scheme for scheme in AUTH_HEADER_TYPE_BYTES}
# Seconds a user's stamp lasts: how long a change of users made without their signals may go
# unseen by token requests.
USER_STAMP_TTL = 60
# Users a process keeps with their stamps (JWTAuthentication).
USERS_KEPT = 10_000
READS = ("GET", "HEAD")


def user_table(user_id: object) -> str:
    """The user's state as a "table" of the read cache: its generation changes with the user."""
    return f"user:{user_id}"


class Holder(tuple):
    """(user id, the token's revocation claim) of a token that passed the in-process checks."""

    __slots__ = ()

    @property
    def user_id(self) -> str:
        return self[0]

    @property
    def claim(self) -> str:
        return self[1]


_authentication: SimpleJWTAuthentication | None = None


class _Validated(NamedTuple):
    token: Token  # as simplejwt validated it; each caller gets a copy
    holder: Holder | None
    until: float  # its expiry, plus simplejwt's leeway


# Tokens that passed simplejwt's checks, with who holds them and until when: all that changes of
# a token's checks is the time, so a token seen again is not verified again. Kept by the token
# itself, not by the header around it (which a client may pad at will); tokens that fail are
# never kept. At most VALIDATED_KEPT, oldest out.
_validated: dict[bytes, _Validated] = {}
VALIDATED_KEPT = 10_000
_validated_lock = threading.Lock()


def _simplejwt() -> SimpleJWTAuthentication:
    global _authentication
    if _authentication is None:
        _authentication = JWTAuthentication()
    return _authentication


def validated(raw: bytes) -> _Validated:
    """The access token of these bytes as simplejwt's authentication validates it (signature,
    expiry, token type: its own code), verified once a process while it lasts; raises
    AuthenticationFailed (InvalidToken) as simplejwt does. Both ways a token is checked, on the
    event loop (`holder`) and in Django (`JWTAuthentication`), come here."""
    if (seen := _validated.get(raw)) is not None:
        if time.time() < seen.until:
            token = copy.copy(seen.token)
            token.payload = dict(seen.token.payload)
            return seen._replace(token=token)
        with _validated_lock:
            _validated.pop(raw, None)
    token = _simplejwt().get_validated_token(raw)
    entry = _Validated(token, holder_of(token), 0.0)
    expires = token.payload.get("exp")  # simplejwt names it so, whatever its settings
    if isinstance(expires, int | float):
        leeway = token.get_token_backend().get_leeway().total_seconds()
        kept = entry._replace(token=copy.copy(token), until=expires + leeway)
        kept.token.payload = dict(token.payload)
        with _validated_lock:
            _validated.pop(raw, None)
            if len(_validated) >= VALIDATED_KEPT:
                _validated.pop(next(iter(_validated)), None)
            _validated[raw] = kept
    return entry


def holder(header: str) -> Holder | None:
    """Who holds the access token of this Authorization header, if simplejwt takes it (checked
    with its own code: the header's form, then the signature, expiry and token type); None
    for anything else, which Django then answers."""
    try:
        raw = _simplejwt().get_raw_token(header.encode("latin-1"))
        return validated(raw).holder if raw is not None else None
    except (AuthenticationFailed, UnicodeEncodeError):
        return None


def _forget_validated(*, setting: str, **kwargs) -> None:
    """Tests change the signing key and token settings: nothing validated before holds."""
    global _authentication
    if setting in ("SECRET_KEY", "SIMPLE_JWT", "AUTH_USER_MODEL"):
        with _validated_lock:
            _validated.clear()
        _users.clear()
        _authentication = None


def holder_of(token) -> Holder | None:
    """Who holds a validated token: its user, and what the database check compares the
    password with; None for a token without a user."""
    try:
        user_id = token[api_settings.USER_ID_CLAIM]
    except KeyError:
        return None
    claim = (
        token.get(api_settings.REVOKE_TOKEN_CLAIM, "") if api_settings.CHECK_REVOKE_TOKEN else ""
    )
    return Holder((str(user_id), str(claim)))


class JWTAuthentication(SimpleJWTAuthentication):
    """simplejwt's authentication, with the user's stamp: a token that passes it leaves the
    stamp in the read cache, so that the user's next token reads are answered from there, and
    the process keeps the user it read. While the stamp holds, the user's next requests that
    reach Django (writes, reads the cache misses) take that user instead of reading it again:
    the stamp says the user is as it was when read."""

    def get_raw_token(self, header: bytes) -> bytes | None:
        """simplejwt's, with the scheme taken in any case (RFC 9110, 11.1): "bearer" too."""
        parts = header.split()
        if parts and (scheme := _SCHEMES.get(parts[0].lower())) is not None:
            header = b" ".join([scheme, *parts[1:]])
        return super().get_raw_token(header)

    def authenticate(self, request):
        # simplejwt's steps, as its authenticate() takes them, the token validated once.
        header = self.get_header(request)
        raw = self.get_raw_token(header) if header is not None else None
        if raw is None:
            return None
        token, found, _ = validated(raw)
        store = get_store()
        if store is None or found is None:
            return self.get_user(token), token
        # The generation first: a change of the user committed after it makes the stamp stale.
        generation, detail = store.stamp_holds(user_table(found.user_id), found.claim)
        if detail is not None and (user := _users.get(found, generation, detail)) is not None:
            return user, token
        user = self.get_user(token)
        if generation is not None:
            seen = fingerprint(user)
            table = user_table(found.user_id)
            store.stamp(table, generation, found.claim, USER_STAMP_TTL, detail=seen)
            _users.keep(found, generation, seen, user)
        return user, token


def fingerprint(user) -> str:
    """The user's row as read, in short: the stamp carries it, so that a process keeps using its
    copy only while the last read of the user, by any process, found the same row."""
    row = repr([getattr(user, field.attname) for field in user._meta.concrete_fields])
    return hashlib.blake2b(row.encode(), digest_size=16).hexdigest()


class Users:
    """The users this process read for their tokens, each with the generation it was read under
    and its fingerprint; at most USERS_KEPT, oldest out. Each request gets its own copy."""

    def __init__(self) -> None:
        self._kept: dict[Holder, tuple[str, str, object]] = {}
        self._lock = threading.Lock()

    def get(self, found: Holder, generation: str | None, seen: str) -> object | None:
        """A copy of the user, if it was read under this generation and the stamp's fingerprint
        (`seen`) is its own."""
        kept = self._kept.get(found)
        if kept is None or generation is None or kept[:2] != (generation, seen):
            return None
        return copy.copy(kept[2])

    def keep(self, found: Holder, generation: str, seen: str, user: object) -> None:
        with self._lock:
            self._kept.pop(found, None)
            if len(self._kept) >= USERS_KEPT:
                self._kept.pop(next(iter(self._kept)), None)
            self._kept[found] = (generation, seen, copy.copy(user))

    def clear(self) -> None:
        with self._lock:
            self._kept.clear()


_users = Users()


# --- Changes of users ----------------------------------------------------------------------------


def on_user_changing(sender, instance, using, update_fields=None, **kwargs) -> None:
    """Before a save or delete of a user: its tokens keep off the cache until it has committed
    and the user has a new generation (refused with CacheUnavailable if Redis cannot be told)."""
    if instance.pk is None or _only_last_login(update_fields):
        return
    table = user_table(_user_id(instance))
    store = get_store()
    if store is not None and not connections[using].in_atomic_block:
        # It commits as it runs: in flight now, written once it has (on_user_changed).
        instance._news_user_write = new_token()
        store.writing({table}, instance._news_user_write)
        return
    tables_written([table], using=using)


def on_user_changed(sender, instance, using, **kwargs) -> None:
    name = instance.__dict__.pop("_news_user_write", "")
    if name and (store := get_store()) is not None:
        store.written({user_table(_user_id(instance))}, name)


def on_migrated(sender, **kwargs) -> None:
    """flush (and migrate) change users without their signals: no stamp outlives them."""
    if sender.label == "auth" and (store := get_store()) is not None:
        store.forget_stamps()


def _user_id(user) -> object:
    return getattr(user, api_settings.USER_ID_FIELD)


def _only_last_login(update_fields) -> bool:
    """A login records its time: the user's tokens stay as good as they were."""
    return update_fields is not None and set(update_fields) == {"last_login"}


def connect_receivers() -> None:
    user = get_user_model()
    for signal, name in ((pre_save, "saving"), (pre_delete, "deleting")):
        signal.connect(on_user_changing, sender=user, dispatch_uid=f"news.cache.user_{name}")
    for signal, name in ((post_save, "saved"), (post_delete, "deleted")):
        signal.connect(on_user_changed, sender=user, dispatch_uid=f"news.cache.user_{name}")
    post_migrate.connect(on_migrated, dispatch_uid="news.cache.users_migrated")
    setting_changed.connect(_forget_validated, dispatch_uid="news.cache.forget_validated")
