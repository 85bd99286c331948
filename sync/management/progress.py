"""A one-shot run's progress as sync_changes shows it: on a terminal, a bar of the calls sent
(on stderr, sized to the plan) with each failure printed above it; otherwise each failure is a
line of output as it comes."""

from __future__ import annotations

from django.core.management.base import OutputWrapper
from tqdm import tqdm

from sync.syncing import FailedEntity


class RunProgress:
    def __init__(self, stdout: OutputWrapper) -> None:
        self.stdout = stdout
        self.interactive = stdout.isatty()
        self.bar = tqdm(total=0, unit="call", disable=not self.interactive, leave=False)

    def planned(self, total: int) -> None:
        self.bar.reset(total=total)

    def sent(self, calls: int) -> None:
        self.bar.update(calls)

    def failed(self, failed: FailedEntity) -> None:
        line = f"FAILED {failed}"
        if self.interactive:
            self.bar.write(line)
        else:
            self.stdout.write(line)

    def close(self) -> None:
        self.bar.close()
