"""Delivering the change log to the target: `sync_changes` and what it reports."""

from sync.syncing.dispatch import StopSignal
from sync.syncing.report import FailedEntity, SyncOptions, SyncReport
from sync.syncing.service import sync_changes
from sync.syncing.verify import Verification, verify_target

__all__ = [
    "FailedEntity",
    "StopSignal",
    "SyncOptions",
    "SyncReport",
    "Verification",
    "sync_changes",
    "verify_target",
]
