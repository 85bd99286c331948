"""Use cases of the sync app: called by the management commands, they own the transactions."""
