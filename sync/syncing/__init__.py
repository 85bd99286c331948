"""Delivering the change log to the target: `sync_changes` and what it reports."""

from sync.syncing.report import FailedEntity, SyncOptions, SyncReport
from sync.syncing.run import sync_changes

__all__ = ["FailedEntity", "SyncOptions", "SyncReport", "sync_changes"]
