from django.apps import AppConfig


class NewsConfig(AppConfig):
    name = "news"
    verbose_name = "News"

    def ready(self) -> None:
        from news.cache import connect_receivers, tokens
        from news.models import Comment, Post

        connect_receivers([Post, Comment])
        tokens.connect_receivers()
