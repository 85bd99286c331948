"""A QuerySet whose bulk writes announce the rows they wrote (news.signals)."""

from django.db import connections, models, transaction

from news.signals import rows_created, rows_updated


class AnnouncingQuerySet(models.QuerySet):
    """Bulk writes that say which rows they wrote, in the same transaction.

    `save()` and `delete()` (including `QuerySet.delete()` and cascades) are announced by
    Django's model signals; these overrides cover the paths that send none. `bulk_update()`
    needs no override: Django runs each of its batches through `update()` below.
    """

    def update(self, **kwargs) -> int:
        query = self.query
        listened = rows_updated.has_listeners(self.model)
        if not listened or query.is_sliced or query.distinct_fields or query.combinator:
            # Nobody listens, or a query Django refuses to update: let Django do (or refuse) it.
            return super().update(**kwargs)
        if kwargs.keys() <= getattr(self.model, "local_only_fields", frozenset()):
            # Only local bookkeeping changes (e.g. created_by set to NULL when its user is
            # deleted): not a change of the post or comment itself.
            return super().update(**kwargs)
        connection = connections[self.db]
        rows = self.model._default_manager.db_manager(self.db)
        with transaction.atomic(using=self.db, savepoint=False):
            # Lock the matching rows and update exactly those, so the announcement names the
            # rows the UPDATE touched and not a row inserted meanwhile. The subquery keeps
            # joins, DISTINCT and repeated rows (a filter across comments) out of the lock.
            pks = list(
                rows.filter(pk__in=self.values("pk"))
                .select_for_update()
                .order_by("pk")
                .values_list("pk", flat=True)
            )
            if not pks:
                return 0
            count = 0
            batch_size = connection.ops.bulk_batch_size(["pk"], pks) or len(pks)
            for start in range(0, len(pks), batch_size):
                batch = pks[start : start + batch_size]
                count += models.QuerySet.update(rows.filter(pk__in=batch), **kwargs)
            rows_updated.send(sender=self.model, pks=pks, using=self.db)
        return count

    update.alters_data = True

    def bulk_create(
        self,
        objs,
        batch_size=None,
        ignore_conflicts=False,
        update_conflicts=False,
        update_fields=None,
        unique_fields=None,
    ):
        options = {
            "batch_size": batch_size,
            "ignore_conflicts": ignore_conflicts,
            "update_conflicts": update_conflicts,
            "update_fields": update_fields,
            "unique_fields": unique_fields,
        }
        if not rows_created.has_listeners(self.model):
            return super().bulk_create(objs, **options)
        # Rows skipped or updated on conflict cannot be told apart from new ones; a listener
        # that refuses such a write rolls back to a savepoint, not the caller's transaction.
        skipping = ignore_conflicts or update_conflicts
        with transaction.atomic(using=self.db, savepoint=skipping):
            created = super().bulk_create(objs, **options)
            pks = None if skipping else [obj.pk for obj in created]
            rows_created.send(sender=self.model, pks=pks, using=self.db)
        return created

    bulk_create.alters_data = True
