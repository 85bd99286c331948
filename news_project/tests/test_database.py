"""The PostgreSQL backend's health check (news_project/postgresql): a poll of the socket while
the server has said nothing, Django's round trip once it has."""

import time

import psycopg
import pytest
from django.db import connection

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def other_connection() -> psycopg.Connection:
    settings = connection.settings_dict
    return psycopg.connect(
        dbname=settings["NAME"], user=settings["USER"], host=settings["HOST"], autocommit=True
    )


def last_statement(pid: int) -> str:
    """The last statement the server ran for that connection (pg_stat_activity)."""
    with other_connection() as other:
        return other.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone()[
            0
        ]


def test_a_quiet_connection_is_kept_without_a_round_trip():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 'the last statement'")
    pid = connection.connection.info.backend_pid
    connection.health_check_done = False

    connection.close_if_health_check_failed()

    assert connection.connection is not None and connection.connection.info.backend_pid == pid
    assert last_statement(pid) == "SELECT 'the last statement'"


def test_a_connection_the_server_dropped_is_closed_before_it_is_used():
    connection.ensure_connection()
    pid = connection.connection.info.backend_pid
    with other_connection() as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])
    time.sleep(0.2)
    connection.health_check_done = False

    assert not connection._quiet()
    connection.close_if_health_check_failed()

    assert connection.connection is None
    with connection.cursor() as cursor:  # a new connection
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
