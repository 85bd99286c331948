"""The change log wakes followers with a NOTIFY that only a commit delivers (PostgreSQL)."""

import pytest
from django.db import transaction
from django.utils import timezone

from news.models import Post
from sync.changelog import retry_parked
from sync.models import EntitySyncState
from sync.notifications import Listener
from sync.planner import EventType
from sync.recording import record_events

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def listener():
    heard = Listener()
    yield heard
    heard.close()


def notifications(listener: Listener, *, within: float = 0.3) -> int:
    count = 0
    while listener.wait(within):
        count += 1
    return count


def test_a_committed_change_is_heard_once(listener, make_post):
    make_post()

    assert notifications(listener) == 1


def test_a_rolled_back_change_is_never_heard(listener, make_post):
    with pytest.raises(RuntimeError), transaction.atomic():
        make_post()
        raise RuntimeError("roll it back")

    assert notifications(listener) == 0


def test_many_events_in_one_transaction_are_one_notification(listener, make_post):
    with transaction.atomic():
        posts = [make_post(title=f"post {n}") for n in range(5)]
        record_events(Post, [post.pk for post in posts], EventType.UPDATED, using="default")

    assert notifications(listener) == 1


def test_a_change_is_heard_only_once_it_commits(listener, make_post):
    with transaction.atomic():
        make_post()
        assert not listener.wait(0.3)

    assert listener.wait(1.0)


def test_retrying_parked_entities_wakes_the_followers(listener):
    EntitySyncState.objects.create(entity_table="news_post", entity_pk=5, parked_at=timezone.now())

    retry_parked()

    assert notifications(listener) == 1
