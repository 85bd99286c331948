"""Django's PostgreSQL backend, with a health check that costs no round trip while the
connection is quiet.

With `CONN_HEALTH_CHECKS`, Django sends `SELECT 1` before a request's first query, so a
connection the server dropped (a restart, `pg_terminate_backend`, an idle timeout) is replaced
instead of failing the request: one round trip per request. The server says when it drops a
connection: it sends its last message and closes the socket. So here the socket is polled
first; nothing to read means the server has said nothing since the last answer, and the
connection is used as it is. Anything to read (that goodbye, or a notification) is checked with
Django's own round trip. A connection lost without a word from the server (a network cut) is
not seen by either check before a query times out.
"""

from __future__ import annotations

import select

from django.db.backends.postgresql import base
from psycopg import pq


class DatabaseWrapper(base.DatabaseWrapper):
    def close_if_health_check_failed(self) -> None:
        if self.connection is None or not self.health_check_enabled or self.health_check_done:
            return
        if not self._quiet() and not self.is_usable():
            self.close()
        self.health_check_done = True

    def _quiet(self) -> bool:
        """True when the connection is idle and the server has sent nothing since."""
        connection = self.connection
        if connection.closed or connection.pgconn.transaction_status != pq.TransactionStatus.IDLE:
            return False
        try:
            readable, _, _ = select.select([connection.fileno()], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable
