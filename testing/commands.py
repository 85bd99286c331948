"""A management command called in the test's own process, as an operator would read it."""

from io import StringIO

from django.core.management import call_command
from django.core.management.base import CommandError


def run_command(name: str, *args: str) -> tuple[int, str, str]:
    """Call `name` with these arguments: its exit status (a CommandError's, else 0), what it
    wrote to its standard output, and the CommandError's line ("" without one)."""
    out = StringIO()
    try:
        call_command(name, *args, stdout=out)
    except CommandError as exc:
        return exc.returncode, out.getvalue(), str(exc)
    return 0, out.getvalue(), ""
