"""What the log handlers of settings.LOGGING add to Python's logging, and what an error report
shows of the settings."""

from __future__ import annotations

import logging

from django.views.debug import SafeExceptionReporterFilter

from sync.errors import without_password


class SecurityWithoutTraceback(logging.Filter):
    """Django logs a refused request (django.security.*: a Host not allowed, a request too
    big) as an error with its traceback. The message names what was refused; the traceback
    shows only Django's own code, and a client can put one in the log on every request. The
    record goes on, without it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("django.security.") and record.exc_info:
            record.exc_info, record.exc_text = None, None
        return True


class ReportFilter(SafeExceptionReporterFilter):
    """Django's filter of what an error report (the DEBUG page, a mailed report) shows, which
    also hides the password of a URL in a setting (TARGET_URL, REDIS_URL): their names say
    nothing secret, so Django's own filter shows them whole."""

    def cleanse_setting(self, key, value):
        value = super().cleanse_setting(key, value)
        # A lazy object passes for a str (SIMPLE_JWT's settings hold some): left as it is.
        return without_password(value) if type(value) is str else value
