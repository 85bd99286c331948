"""One Redis connection of an event loop's, shared by every read looked up on that loop.

The commands called in one turn of the event loop are written together at its end, beside the
others in flight: Redis answers them in the order they came, and one reading task hands each answer
to its caller. So the reads a worker answers at once share their round trips and their writes,
without a pool of connections or a turn to wait for.
Answers are parsed by hiredis, the parser redis-py itself uses.

A connection that fails, times out or answers what cannot be parsed is dropped with every command
in flight on it (each raises), and the next command opens a new one.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import ssl
from collections.abc import Awaitable, Callable

import hiredis
import redis
from redis.connection import parse_url

# What a rediss:// URL's ssl_cert_reqs says, as redis-py takes it.
CERT_REQS = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}


class PipelinedRedis:
    """Commands over one connection, answered in the order they were written."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float,
        connect_timeout: float,
        on_open: Callable[[Callable[..., Awaitable[object]]], Awaitable[None]] | None = None,
    ) -> None:
        """`on_open`, if given, is awaited on each new connection once it is set up, before any
        command: it is given a `call` of its own on that connection."""
        self.options = parse_url(url)
        self.timeout, self.connect_timeout = timeout, connect_timeout
        self.on_open = on_open
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Future | None = None

    async def call(self, *args: str | bytes | int | float | memoryview) -> object:
        """The answer to one command. Raises redis.ResponseError for an error answer,
        redis.ConnectionError if Redis cannot be reached or the connection failed, TimeoutError
        if no answer came within `timeout` seconds."""
        protocol = self._protocol
        if protocol is None or protocol.broken is not None:
            protocol = await self._connect()
        return await self._call_on(protocol, *args)

    @property
    def open(self) -> bool:
        """Whether the connection is open and set up: a call then opens none."""
        return self._protocol is not None and self._protocol.broken is None

    def close(self) -> None:
        """Drop the connection, if open: on an event loop that is closing, or closed."""
        if (protocol := self._protocol) is not None:
            self._protocol = None
            # On a closed event loop nothing waits for it any more, and its socket goes with it.
            with contextlib.suppress(RuntimeError):
                protocol.fail(redis.ConnectionError("the connection was closed"))

    async def _connect(self) -> _Protocol:
        """The connection, opened and set up (AUTH, SELECT) once however many callers wait."""
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._open())
            # Its callers may all have gone (their own deadline): the failure is theirs, not a
            # task's left unread.
            self._connecting.add_done_callback(_read_out)
        connecting = self._connecting
        try:
            return await asyncio.shield(connecting)
        finally:
            if connecting.done() and self._connecting is connecting:
                self._connecting = None

    async def _open(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        options = self.options
        try:
            async with asyncio.timeout(self.connect_timeout):
                if "path" in options:
                    _, protocol = await loop.create_unix_connection(_Protocol, options["path"])
                else:
                    _, protocol = await loop.create_connection(
                        _Protocol,
                        options.get("host", "localhost"),
                        options.get("port", 6379),
                        ssl=_ssl_context(options),
                    )
        except OSError as exc:
            raise redis.ConnectionError(f"cannot connect to Redis: {exc}") from exc
        if options.get("password") is not None:
            username = [options["username"]] if options.get("username") else []
            await self._setup(protocol, "AUTH", *username, options["password"])
        if options.get("db"):
            await self._setup(protocol, "SELECT", options["db"])
        if self.on_open is not None:
            try:
                await self.on_open(functools.partial(self._call_on, protocol))
            except BaseException as exc:
                protocol.fail(redis.ConnectionError(f"the connection's set-up failed: {exc}"))
                raise
        self._protocol = protocol
        return protocol

    async def _call_on(
        self, protocol: _Protocol, *args: str | bytes | int | float | memoryview
    ) -> object:
        reply = await protocol.send(_packed(args), self.timeout)
        if isinstance(reply, hiredis.ReplyError):
            raise redis.ResponseError(str(reply))
        return reply

    async def _setup(self, protocol: _Protocol, *args: str | int) -> None:
        reply = await protocol.send(_packed(args), self.timeout)
        if reply != b"OK":
            protocol.fail(redis.ConnectionError(f"Redis refused {args[0]}: {reply!r:.80}"))
            raise redis.ConnectionError(f"Redis refused {args[0]}: {reply!r:.80}")


class _Protocol(asyncio.Protocol):
    """Commands written in the order they came, those of one turn of the event loop in one
    write; their answers handed out in that order. One timer watches the oldest command in
    flight: answers come in order, so when it is late, the connection is."""

    def __init__(self) -> None:
        self.reader = hiredis.Reader()
        self.waiting: collections.deque[tuple[asyncio.Future, float]] = collections.deque()
        self.unwritten: list[bytes] = []
        self.transport: asyncio.Transport | None = None
        self.broken: Exception | None = None
        self.watchdog: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    async def send(self, command: bytes, timeout: float) -> object:
        if self.broken is not None:
            raise self.broken
        loop = asyncio.get_running_loop()
        answer = loop.create_future()
        self.waiting.append((answer, loop.time() + timeout))
        if not self.unwritten:
            loop.call_soon(self._write)
        self.unwritten.append(command)
        if self.watchdog is None:
            self.watchdog = loop.call_later(timeout, self._watch)
        return await answer

    def _write(self) -> None:
        commands, self.unwritten = self.unwritten, []
        if self.broken is None and self.transport is not None:
            self.transport.write(b"".join(commands))

    def _watch(self) -> None:
        """Fail the connection if its oldest command is late; else watch the one now oldest."""
        self.watchdog = None
        if not self.waiting or self.broken is not None:
            return
        loop = asyncio.get_running_loop()
        if (due := self.waiting[0][1]) <= loop.time():
            self.fail(TimeoutError("Redis did not answer in time"))
        else:
            self.watchdog = loop.call_at(due, self._watch)

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        try:
            while (reply := self.reader.gets()) is not False:
                if not self.waiting:
                    raise hiredis.ProtocolError("an answer to no command")
                answer, _ = self.waiting.popleft()
                if not answer.done():  # its caller may have been cancelled
                    answer.set_result(reply)
        except hiredis.ProtocolError as exc:
            self.fail(redis.ConnectionError(f"Redis answered what does not parse: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(redis.ConnectionError(f"the connection to Redis was lost: {exc or 'closed'}"))

    def fail(self, error: Exception) -> None:
        """Drop the connection: every command in flight on it raises `error`."""
        if self.broken is None:
            self.broken = error
        if self.watchdog is not None:
            self.watchdog.cancel()
            self.watchdog = None
        while self.waiting:
            answer, _ = self.waiting.popleft()
            if not answer.done():
                answer.set_exception(error)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.abort()


def _read_out(task: asyncio.Future) -> None:
    if not task.cancelled():
        task.exception()


def _packed(args: tuple) -> bytes:
    """A command as Redis reads it (RESP), packed by hiredis."""
    return hiredis.pack_command(args)  # type: ignore[arg-type]  # its stub takes one item


def _ssl_context(options: dict) -> ssl.SSLContext | None:
    """The TLS of a rediss:// URL, with its ssl_ca_certs, ssl_cert_reqs and ssl_check_hostname
    taken as redis-py takes them."""
    if options.get("connection_class") is not redis.connection.SSLConnection:
        return None
    context = ssl.create_default_context(cafile=options.get("ssl_ca_certs"))
    requirement = options.get("ssl_cert_reqs", "required")
    if isinstance(requirement, str):
        requirement = CERT_REQS.get(requirement.lower(), ssl.CERT_REQUIRED)
    context.check_hostname = requirement != ssl.CERT_NONE and options.get("ssl_check_hostname") in (
        None,
        True,
    )
    context.verify_mode = requirement
    return context
