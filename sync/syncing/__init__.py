"""Delivering the change log to the target: `sync_changes` and what it reports."""

from sync.syncing.dispatch import StopSignal
from sync.syncing.report import FailedEntity, SyncOptions, SyncReport
from sync.syncing.service import sync_changes

__all__ = ["FailedEntity", "StopSignal", "SyncOptions", "SyncReport", "sync_changes"]
