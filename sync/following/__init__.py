"""Following the change log live: `sync_changes --follow`, with a standby that takes over."""

from sync.following.follower import Follower, FollowOptions
from sync.following.signals import StopRequest, stop_on_signals, stopping_run

__all__ = ["FollowOptions", "Follower", "StopRequest", "stop_on_signals", "stopping_run"]
