from django.apps import AppConfig


class NewsConfig(AppConfig):
    name = "news"
    verbose_name = "News"

    def ready(self) -> None:
        from news.cache import connect_receivers, tokens
        from news.routes import CACHED_MODELS

        connect_receivers(CACHED_MODELS)
        tokens.connect_receivers()
