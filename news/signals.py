"""What news announces beyond Django's own model signals, for whoever listens.

post_save and pre_delete announce each save and delete (cascades included). Bulk writes send
no model signals, so news's queryset sends these, inside the write's transaction, with the
primary keys of every row written, in id order:

- `rows_created(sender=model, pks, using)`: after `bulk_create()`. `pks` is None when the
  write may have skipped rows it was given (`ignore_conflicts`, `update_conflicts`), so a
  listener that must know every row can refuse it by raising, which rolls the write back;
- `rows_updated(sender=model, pks, using)`: after `update()` and `bulk_update()`.

news does not know who listens; the sync app turns these into its change log.
"""

from django.dispatch import Signal

rows_created = Signal()
rows_updated = Signal()
