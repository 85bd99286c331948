"""Static files (admin, Swagger UI) served by WhiteNoise, compressed once collected."""

from whitenoise.middleware import WhiteNoiseMiddleware


class CollectedFirstWhiteNoise(WhiteNoiseMiddleware):
    """WhiteNoise, where a file collectstatic collected (with its compressed .gz beside it) wins
    over the app folder's own copy. The finders only fill in what was never collected, so a
    checkout serves static files without collectstatic, and the image serves them compressed."""

    def add_files_from_finders(self) -> None:
        collected = dict(self.files)
        super().add_files_from_finders()
        self.files.update(collected)
