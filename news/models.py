"""Posts and comments: the entities this service is the master system for."""

from django.conf import settings
from django.db import connections, models, router

from news.querysets import AnnouncingQuerySet


class NewsItem(models.Model):
    """What posts and comments share: who created them, when, and a manager that announces
    its bulk writes (news.signals)."""

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="%(class)ss",
        help_text="Who created it through the API; empty for imported rows.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = AnnouncingQuerySet.as_manager()
    # Local bookkeeping, not the item's content: an update of nothing else is not announced.
    local_only_fields = frozenset({"created_by", "created_by_id"})

    class Meta:
        abstract = True
        ordering = ["id"]
        # Django's internal bulk writes (e.g. RelatedManager.add()) go through the base manager:
        # make it the announcing one so they are announced too.
        base_manager_name = "objects"


class Post(NewsItem):
    user_id = models.IntegerField(help_text="Author id on the target system.")
    title = models.CharField(max_length=256)
    body = models.CharField(max_length=1024, blank=True, default="")

    def __str__(self) -> str:
        return f"Post {self.pk}: {self.title[:40]}"


class Comment(NewsItem):
    # CASCADE runs in Python (not ON DELETE in SQL), so every deleted comment sends a signal.
    post = models.ForeignKey(Post, on_delete=models.CASCADE, related_name="comments")
    name = models.CharField(max_length=128)
    email = models.EmailField(max_length=128)
    body = models.CharField(max_length=1024, blank=True, default="")

    def __str__(self) -> str:
        return f"Comment {self.pk} on post {self.post_id}"


# The largest id a row has room for (bigint): a larger one names no row.
LARGEST_ID = 2**63 - 1


def locked_post(pk: int | str) -> Post | None:
    """The post, locked until the transaction ends so that it cannot be deleted under a comment
    being added to it; None when there is none (or it went while we waited).

    FOR KEY SHARE, the lock the comment's foreign key takes anyway: it waits for a delete or an
    edit of the post under way (FOR UPDATE) and holds off the next, while comments added to the
    same post at once go ahead together. Django names no such lock, hence the SQL; other
    databases lock nothing finer than a select_for_update()."""
    try:
        pk = int(pk)
    except (TypeError, ValueError):
        return None
    if not 1 <= pk <= LARGEST_ID:
        return None
    using = router.db_for_write(Post)
    posts = Post.objects.db_manager(using)
    if connections[using].vendor != "postgresql":
        return posts.select_for_update().filter(pk=pk).first()
    locked = posts.raw(f"SELECT * FROM {Post._meta.db_table} WHERE id = %s FOR KEY SHARE", [pk])
    return next(iter(locked), None)


class RowCount(models.Model):
    """A change in the number of rows of a table, written by triggers (news.counts says why):
    the sum of a table's rows here is its row count. PostgreSQL only."""

    table_name = models.CharField(max_length=63)
    rows = models.BigIntegerField()

    class Meta:
        indexes = [models.Index(fields=["table_name"], name="news_rowcount_table")]

    def __str__(self) -> str:
        return f"{self.table_name}: {self.rows:+d}"
