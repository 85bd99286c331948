"""Errors of the sync app's use cases; their messages are meant for the operator as they are."""


class SyncError(Exception):
    """A use case of the sync app could not do its job; nothing half-done is left behind."""


class SyncLocked(SyncError):
    """Another sync_changes run holds the lock."""
