"""Static files (news_project/static.py): served compressed once collectstatic has run, as in the
image, and still served from the apps without it, as in a checkout."""

import pytest
from django.core.management import call_command
from django.test import Client

BUNDLE = "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js"


@pytest.fixture
def collected(settings, tmp_path):
    """collectstatic run, as the Dockerfile runs it, into a STATIC_ROOT of the test's own."""
    settings.STATIC_ROOT = tmp_path / "staticfiles"
    call_command("collectstatic", "--noinput", verbosity=0)
    return settings.STATIC_ROOT


def test_collected_files_are_served_gzipped_to_a_client_that_accepts_it(collected):
    zipped = Client().get(BUNDLE, HTTP_ACCEPT_ENCODING="gzip, deflate, br")
    plain = Client().get(BUNDLE)

    zipped_size = len(b"".join(zipped.streaming_content))
    plain_size = len(b"".join(plain.streaming_content))
    assert (zipped.status_code, zipped["Content-Encoding"]) == (200, "gzip")
    assert "Accept-Encoding" in zipped["Vary"]
    assert "Content-Encoding" not in plain.headers
    assert zipped_size * 3 < plain_size
    # The file collectstatic compressed, not the app's copy compressed again on the way out.
    compressed = collected / (BUNDLE.removeprefix("/static/") + ".gz")
    assert int(zipped["Content-Length"]) == zipped_size == compressed.stat().st_size


def test_without_collectstatic_the_apps_files_are_served(settings, tmp_path):
    settings.STATIC_ROOT = tmp_path / "never-collected"

    answer = Client().get(BUNDLE)

    assert answer.status_code == 200
