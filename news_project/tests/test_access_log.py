"""The access log's lines (news_project/access_log.py), as a worker writes them to its stream."""

import asyncio
import re

import pytest

from news_project.access_log import PIPE_BUF, AccessLog


class Stream:
    """A stream that keeps what each flush sent on: one write of the file descriptor."""

    def __init__(self) -> None:
        self.pending, self.sent = "", []

    def write(self, text: str) -> int:
        self.pending += text
        return len(text)

    def flush(self) -> None:
        if self.pending:
            self.sent.append(self.pending.encode())
            self.pending = ""


def scope(path: bytes, query: bytes = b"", version: str = "1.1") -> dict:
    return {
        "method": "GET",
        "raw_path": path,
        "query_string": query,
        "http_version": version,
        "client": ("127.0.0.1", 50000),
    }


def logged(*scopes: dict) -> list[bytes]:
    """What the stream was sent for these requests, all answered in one turn of the loop."""
    stream = Stream()

    async def answer_all() -> None:
        log = AccessLog(stream)
        for each in scopes:
            log.answered(each, 200, 1_780_000_000.0, 0.0)
        await asyncio.sleep(0)  # the turn in which the log writes

    asyncio.run(answer_all())
    return stream.sent


def test_lines_answered_together_go_out_in_writes_of_whole_lines_each_atomic_on_a_pipe():
    """Two workers write to one pipe: a write of at most PIPE_BUF bytes is never split, so
    every write ends a line and none is longer (unless a single line is)."""
    paths = [f"/news/nothing-{n}/{'x' * (n * 37 % 900)}/".encode() for n in range(200)]

    sent = logged(*(scope(path) for path in paths))

    assert len(sent) > 1
    assert all(len(write) <= PIPE_BUF and write.endswith(b"\n") for write in sent)
    lines = b"".join(sent).decode().splitlines()
    assert [line.split('"')[1].split()[1] for line in lines] == [p.decode() for p in paths]


def test_a_line_longer_than_a_pipe_write_goes_out_alone():
    long_query = b"q=" + b"y" * (2 * PIPE_BUF)

    sent = logged(scope(b"/a/"), scope(b"/b/", long_query), scope(b"/c/"))

    assert [write.count(b"\n") for write in sent] == [1, 1, 1]
    assert long_query in sent[1]


def test_http_1_0_is_named_so():
    (line,) = logged(scope(b"/news/posts/", version="1"))

    assert b'"GET /news/posts/ HTTP/1.0" 200' in line


@pytest.mark.parametrize(
    ("path", "query", "shown"),
    [
        (b"/news/posts/", "title=Åre".encode(), rb"/news/posts/?title=\xc3\x85re"),
        ("/news/ß/".encode(), b"", rb"/news/\xc3\x9f/"),
        (b"/news/posts/", b"a=%0A%22", b"/news/posts/?a=%0A%22"),
    ],
    ids=["utf-8-query", "utf-8-path", "percent-encoded"],
)
def test_bytes_beyond_ascii_are_shown_escaped_so_a_line_stays_one_ascii_line(path, query, shown):
    (line,) = logged(scope(path, query))

    assert line.isascii()
    assert line.count(b"\n") == 1 and len(line.decode().splitlines()) == 1
    assert re.search(rb'"GET (\S+) HTTP/1.1"', line).group(1) == shown
