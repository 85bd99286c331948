#!/usr/bin/env python3
"""The contract run of .ci/fuzz-api: a client generated from /api/schema/ by openapi-python-client
does a CRUD and auth cycle against the running API, and its models must parse every answer.

Usage: contract_client.py BASE_URL CLIENT_DIR USERNAME PASSWORD, CLIENT_DIR holding the generated
package `news_api_client`. Each call must answer the status the cycle expects, with a body the
generated model for that status parses, declaring every field it holds (nothing left in
additional_properties). Exits 1 naming the first call that broke the contract.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any


class ContractBroken(Exception):
    pass


def main(base_url: str, client_dir: str, username: str, password: str) -> int:
    sys.path.insert(0, str(Path(client_dir)))
    try:
        calls = run_cycle(base_url, username, password)
    except ContractBroken as exc:
        print(f"contract: BROKEN: {exc}")
        return 1
    print(f"contract: {calls} calls, every answer as the schema says")
    return 0


def run_cycle(base_url: str, username: str, password: str) -> int:
    from news_api_client import AuthenticatedClient, Client, models
    from news_api_client.api.api import (
        api_token_blacklist_create,
        api_token_create,
        api_token_refresh_create,
        api_token_verify_create,
    )
    from news_api_client.api.news import (
        news_comments_create,
        news_comments_destroy,
        news_comments_partial_update,
        news_comments_retrieve,
        news_posts_comments_create,
        news_posts_comments_list,
        news_posts_create,
        news_posts_destroy,
        news_posts_list,
        news_posts_partial_update,
        news_posts_retrieve,
        news_posts_update,
    )

    anonymous = Client(base_url=base_url, raise_on_unexpected_status=True)
    check = Checker()

    # Log in, verify the access token, refresh the pair.
    pair = check("log in", api_token_create.sync_detailed(
        client=anonymous,
        body=models.TokenObtainPairRequest(username=username, password=password),
    ), 200, models.TokenObtainPair)  # fmt: skip
    check("verify", api_token_verify_create.sync_detailed(
        client=anonymous, body=models.TokenVerifyRequest(token=pair.access)
    ), 200, models.ApiTokenVerifyCreateResponse200)  # fmt: skip
    pair = check("refresh", api_token_refresh_create.sync_detailed(
        client=anonymous, body=models.TokenRefreshRequest(refresh=pair.refresh)
    ), 200, models.TokenRefresh)  # fmt: skip
    user = AuthenticatedClient(base_url=base_url, token=pair.access)

    # Refused: a write without a token, a bad token, an ordering that is not allowed.
    check("create without a token", news_posts_create.sync_detailed(
        client=anonymous, body=models.PostRequest(title="x")
    ), 401, models.Error)  # fmt: skip
    bad_token = AuthenticatedClient(base_url=base_url, token="not-a-token")
    check("list with a bad token", news_posts_list.sync_detailed(client=bad_token), 401,
          models.Error)  # fmt: skip

    # Posts: create, read (item, page, all), change with and without If-Match, replace.
    post_answer = news_posts_create.sync_detailed(
        client=user, body=models.PostRequest(title="Contract", body="A post")
    )
    post = check("create a post", post_answer, 201, models.Post)
    if not post_answer.headers.get("location", "").endswith(f"/news/posts/{post.id}/"):
        raise ContractBroken(f"create a post: Location {post_answer.headers.get('location')!r}")
    read = news_posts_retrieve.sync_detailed(client=anonymous, id=post.id)
    check("read the post", read, 200, models.Post)
    check("a page of posts", news_posts_list.sync_detailed(
        client=anonymous, page_size=5, ordering=models.NewsPostsListOrdering("-id")
    ), 200, models.PaginatedPostList)  # fmt: skip
    every = check("every post", news_posts_list.sync_detailed(client=anonymous, all_=True), 200,
                  list)  # fmt: skip
    for item in every:
        declared_only("every post", item, models.Post)
    edited = news_posts_partial_update.sync_detailed(
        client=user, id=post.id, body=models.PatchedPostRequest(title="Changed"),
        if_match=read.headers["etag"],
    )  # fmt: skip
    check("change the post with its ETag", edited, 200, models.Post)
    check("change it with the old ETag", news_posts_partial_update.sync_detailed(
        client=user, id=post.id, body=models.PatchedPostRequest(title="Lost"),
        if_match=read.headers["etag"],
    ), 412, models.Error)  # fmt: skip
    check("replace the post", news_posts_update.sync_detailed(
        client=user, id=post.id, body=models.PostRequest(title="Replaced", body=""),
        if_match=edited.headers["etag"],
    ), 200, models.Post)  # fmt: skip

    # Comments: under the post and by post_id; read, change, delete.
    check("comment under the post", news_posts_comments_create.sync_detailed(
        client=user, post_pk=post.id,
        body=models.CommentRequest(name="Ann", email="ann@example.com", body="Hi"),
    ), 201, models.Comment)  # fmt: skip
    comment = check("comment by post_id", news_comments_create.sync_detailed(
        client=user,
        body=models.NewCommentRequest(post_id=post.id, name="Bob", email="bob@example.com"),
    ), 201, models.Comment)  # fmt: skip
    check("comment on a post that does not exist", news_comments_create.sync_detailed(
        client=user,
        body=models.NewCommentRequest(post_id=2**62, name="Bob", email="bob@example.com"),
    ), 400, models.NewsCommentsCreateResponse400, field_errors=True)  # fmt: skip
    check("the post's comments", news_posts_comments_list.sync_detailed(
        client=anonymous, post_pk=post.id
    ), 200, models.PaginatedCommentList)  # fmt: skip
    check("read the comment", news_comments_retrieve.sync_detailed(
        client=anonymous, id=comment.id
    ), 200, models.Comment)  # fmt: skip
    check("change the comment", news_comments_partial_update.sync_detailed(
        client=user, id=comment.id, body=models.PatchedCommentRequest(name="Robert")
    ), 200, models.Comment)  # fmt: skip
    check("delete the comment", news_comments_destroy.sync_detailed(
        client=user, id=comment.id
    ), 204, None)  # fmt: skip
    check("read the deleted comment", news_comments_retrieve.sync_detailed(
        client=anonymous, id=comment.id
    ), 404, models.Error)  # fmt: skip

    # Delete the post; log out; the refresh token logged out with is refused.
    check("delete the post", news_posts_destroy.sync_detailed(client=user, id=post.id), 204, None)
    check("read the deleted post", news_posts_retrieve.sync_detailed(
        client=anonymous, id=post.id
    ), 404, models.Error)  # fmt: skip
    check("log out", api_token_blacklist_create.sync_detailed(
        client=anonymous, body=models.TokenBlacklistRequest(refresh=pair.refresh)
    ), 200, models.ApiTokenBlacklistCreateResponse200)  # fmt: skip
    check("refresh after logging out", api_token_refresh_create.sync_detailed(
        client=anonymous, body=models.TokenRefreshRequest(refresh=pair.refresh)
    ), 401, models.Error)  # fmt: skip
    return check.calls


class Checker:
    """Checks one answer: its status, and that the generated model parsed its body."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(
        self, name: str, response, status: int, model: type | None, *, field_errors: bool = False
    ) -> Any:
        """`field_errors`: a 400's body, an object whose keys are the fields in error."""
        self.calls += 1
        if response.status_code != status:
            raise ContractBroken(
                f"{name}: status {response.status_code}, expected {status}: "
                f"{response.content[:300]!r}"
            )
        if model is None:
            if response.content:
                raise ContractBroken(f"{name}: a body where none is documented")
            return None
        if field_errors:
            if not isinstance(response.parsed, model) or not response.parsed.additional_properties:
                raise ContractBroken(f"{name}: no field errors parsed: {response.content!r}")
            return response.parsed
        return declared_only(name, response.parsed, model)


def declared_only(name: str, parsed, model: type):
    if not isinstance(parsed, model):
        raise ContractBroken(f"{name}: parsed as {type(parsed).__name__}, not {model.__name__}")
    extra = getattr(parsed, "additional_properties", None)
    if extra:
        raise ContractBroken(f"{name}: fields the schema does not declare: {sorted(extra)}")
    for value in getattr(parsed, "__dict__", {}).values():
        if isinstance(value, list):
            for item in value:
                if hasattr(item, "additional_properties"):
                    declared_only(name, item, type(item))
    return parsed


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
