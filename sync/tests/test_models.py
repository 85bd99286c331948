"""The change log's schema: pending events are found through a partial index."""

import pytest
from django.db import connection

from sync.models import ModelEvent


@pytest.mark.postgres
@pytest.mark.django_db
def test_pending_events_have_a_partial_index_in_id_order():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = %s", ["sync_event_pending_idx"]
        )
        (definition,) = cursor.fetchone()

    assert f"ON public.{ModelEvent._meta.db_table} USING btree (id)" in definition
    assert definition.endswith("WHERE (synced_at IS NULL)")


@pytest.mark.postgres
@pytest.mark.django_db
def test_the_query_for_pending_events_uses_the_partial_index():
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        sql, params = ModelEvent.objects.pending().order_by("id").query.sql_with_params()
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())

    assert "sync_event_pending_idx" in plan
