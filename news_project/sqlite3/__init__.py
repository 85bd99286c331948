from news_project.sqlite3.base import existing_only

__all__ = ["existing_only"]
