"""The shell blocks of README.md and docs/*.md, each with the marker that says how CI runs it.

A block is marked on the line before its fence: `<!-- doc: KIND -->`, KIND one of
  cycle    the README's whole cycle: .ci/doc-run runs it step by step
  run      .ci/doc-run runs it after the cycle, against the same servers and database (a step
           whose comment says "Ctrl-C stops it" runs a few seconds, then gets Ctrl-C)
  ci       .ci/run runs it (make test, make lint, .ci/run itself)
  bench    .ci/bench-smoke runs the benchmark it names, with small sizes
  compose  docker compose commands: no engine in CI; the compose file is schema-validated
Used by .ci/doc-run and news_project/tests/test_docs.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

KINDS = ("cycle", "run", "ci", "bench", "compose")
MARKER = re.compile(r"<!-- doc: ([a-z]+) -->")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # of the opening fence, from 1
    kind: str | None  # None: the block has no marker
    text: str

    @property
    def steps(self) -> list[str]:
        return steps(self.text)


def documents(root: Path) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def shell_blocks(path: Path) -> list[Block]:
    lines = path.read_text().splitlines()
    blocks = []
    index = 0
    while index < len(lines):
        if lines[index].strip() == "```sh":
            marker = MARKER.fullmatch(lines[index - 1].strip()) if index else None
            end = index + 1
            while lines[end].strip() != "```":
                end += 1
            text = "\n".join(lines[index + 1 : end])
            blocks.append(Block(path, index + 1, marker.group(1) if marker else None, text))
            index = end
        index += 1
    return blocks


def steps(text: str) -> list[str]:
    """The commands of a block: continuation lines joined, blank and comment-only lines left out."""
    found, current = [], ""
    for line in text.splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current += line + "\n"
        if not line.rstrip().endswith("\\"):
            found.append(current.rstrip("\n"))
            current = ""
    if current:
        found.append(current.rstrip("\n"))
    return found
