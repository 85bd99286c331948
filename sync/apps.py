from django.apps import AppConfig


class SyncConfig(AppConfig):
    name = "sync"
    verbose_name = "Synchronisation"

    def ready(self) -> None:
        from sync import signals

        signals.connect_receivers()
