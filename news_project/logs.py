"""What the log handlers of settings.LOGGING add to Python's logging."""

from __future__ import annotations

import logging


class SecurityWithoutTraceback(logging.Filter):
    """Django logs a refused request (django.security.*: a Host not allowed, a request too
    big) as an error with its traceback. The message names what was refused; the traceback
    shows only Django's own code, and a client can put one in the log on every request. The
    record goes on, without it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("django.security.") and record.exc_info:
            record.exc_info, record.exc_text = None, None
        return True
