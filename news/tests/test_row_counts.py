"""Row counts kept by triggers (news/counts.py): a page's `count` is exact without counting."""

import threading

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from news.counts import counted_rows
from news.models import Comment, Post, RowCount
from testing.processes import database_url
from testing.rows import make_comment, make_post

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def assert_counts_exact() -> None:
    for model in (Post, Comment):
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM {model._meta.db_table}")
            (actual,) = cursor.fetchone()
        assert counted_rows(model.objects.all()) == actual, model.__name__


def test_counts_follow_every_kind_of_write(api_client):
    post = api_client.post("/news/posts/", {"title": "One"}).json()
    for n in range(3):
        api_client.post(f"/news/posts/{post['id']}/comments/", {"name": f"{n}", "email": "a@b.cd"})
    assert_counts_exact()

    other = make_post()
    Comment.objects.bulk_create(
        [Comment(post=other, name=str(n), email="a@b.cd") for n in range(5)]
    )
    assert_counts_exact()
    assert api_client.delete(f"/news/posts/{post['id']}/").status_code == 204  # and its comments
    assert_counts_exact()
    Comment.objects.filter(name__in=["0", "1"]).delete()
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO news_comment (post_id, name, email, body, created_at, updated_at) "
            "SELECT %s, 'raw', 'a@b.cd', '', now(), now() FROM generate_series(1, 7)",
            [other.pk],
        )
    assert_counts_exact()
    assert counted_rows(Comment.objects.all()) == 10


def test_a_rolled_back_write_counts_nothing_and_truncate_starts_again():
    make_post()
    with pytest.raises(RuntimeError), transaction.atomic():
        make_post()
        raise RuntimeError
    assert counted_rows(Post.objects.all()) == 1

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE news_post CASCADE")
    assert (counted_rows(Post.objects.all()), counted_rows(Comment.objects.all())) == (0, 0)
    make_post()
    assert_counts_exact()


def test_deltas_are_folded_so_a_count_reads_few_rows():
    post = make_post()
    for n in range(300):
        make_comment(post=post, name=str(n))

    assert counted_rows(Comment.objects.all()) == 300
    assert RowCount.objects.filter(table_name="news_comment").count() <= 64


def test_concurrent_writers_keep_the_count_exact():
    post = make_post()
    errors: list[BaseException] = []

    def writer(offset: int) -> None:
        try:
            with psycopg.connect(database_url().replace("postgres://", "postgresql://")) as conn:
                for n in range(40):
                    with conn.transaction():
                        conn.execute(
                            "INSERT INTO news_comment (post_id, name, email, body, created_at, "
                            "updated_at) VALUES (%s, %s, 'a@b.cd', '', now(), now())",
                            [post.pk, f"{offset}-{n}"],
                        )
                        if n % 4 == 0:
                            conn.execute(
                                "DELETE FROM news_comment WHERE name = %s", [f"{offset}-{n}"]
                            )
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert counted_rows(Comment.objects.all()) == 6 * 30
    assert_counts_exact()


def test_a_page_of_the_whole_table_does_not_count_it_but_a_filtered_one_does(anon_client):
    post = make_post()
    for n in range(3):
        make_comment(post=post, name=str(n))

    with CaptureQueriesContext(connection) as whole:
        page = anon_client.get("/news/comments/?page_size=2").json()
    with CaptureQueriesContext(connection) as filtered:
        of_post = anon_client.get(f"/news/comments/?post_id={post.pk}&page_size=2").json()

    assert (page["count"], of_post["count"]) == (3, 3)
    assert not any("COUNT(*)" in q["sql"].upper() for q in whole.captured_queries)
    assert any("COUNT(*)" in q["sql"].upper() for q in filtered.captured_queries)


def test_the_migration_starts_the_counts_from_the_rows_there_are():
    post = make_post()
    make_comment(post=post)
    call_command("migrate", "news", "0001", verbosity=0)
    make_comment(post=post)  # written while no trigger counts

    call_command("migrate", "news", verbosity=0)

    assert counted_rows(Comment.objects.all()) == 2
    make_comment(post=post)
    assert_counts_exact()
