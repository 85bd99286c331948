"""Following the change log live: `sync_changes --follow`, with a standby that takes over."""

from sync.following.follower import Follower, FollowOptions

__all__ = ["FollowOptions", "Follower"]
