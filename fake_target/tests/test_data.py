"""Generated data has JSONPlaceholder's shape and sizes, and is the same on every run."""

from django.core.validators import validate_email

from fake_target.data import generate_comments, generate_dataset, generate_posts
from news.models import Comment, Post


def test_posts_have_jsonplaceholder_fields_ids_and_authors():
    posts = generate_posts(100)

    assert [set(post) for post in posts] == [{"userId", "id", "title", "body"}] * 100
    assert [post["id"] for post in posts] == list(range(1, 101))
    assert [post["userId"] for post in posts[::10]] == list(range(1, 11))
    assert {post["userId"] for post in posts[:10]} == {1}


def test_every_post_gets_five_comments_with_consecutive_ids():
    comments = generate_comments(100)

    assert [set(c) for c in comments] == [{"postId", "id", "name", "email", "body"}] * 500
    assert [c["id"] for c in comments] == list(range(1, 501))
    assert [c["postId"] for c in comments[:11]] == [1] * 5 + [2] * 5 + [3]


def test_values_are_like_jsonplaceholder_and_fit_the_api_limits():
    posts, comments = generate_dataset(2000)

    for post in posts:
        assert 0 < len(post["title"]) <= 79 <= Post._meta.get_field("title").max_length
        assert post["body"].count("\n") == 3
        assert len(post["body"]) <= 225
    for comment in comments:
        validate_email(comment["email"])
        assert len(comment["email"]) <= 33
        assert 0 < len(comment["name"]) <= 81 <= Comment._meta.get_field("name").max_length
        assert comment["body"].count("\n") == 3
        assert len(comment["body"]) <= 263
    mean_title = sum(len(post["title"]) for post in posts) / len(posts)
    mean_body = sum(len(comment["body"]) for comment in comments) / len(comments)
    assert 30 < mean_title < 50
    assert 130 < mean_body < 190


def test_the_same_seed_gives_the_same_data_and_another_seed_other_data():
    assert generate_dataset(20) == generate_dataset(20)
    assert generate_dataset(20, seed=1) != generate_dataset(20)
    assert len(generate_dataset(3, comments_per_post=2)[1]) == 6
