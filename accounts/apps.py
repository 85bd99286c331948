from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts and tokens"

    def ready(self) -> None:
        from accounts import signals

        signals.connect_receivers()
