"""The admin login locks a client address out after repeated failures; the API login does not."""

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

ADMIN_LOGIN = "/admin/login/"
PASSWORD = "correct-horse-battery"


def admin_login(client: Client, password: str, username: str = "carol"):
    return client.post(ADMIN_LOGIN, {"username": username, "password": password, "next": "/admin/"})


def test_admin_login_with_the_right_password_works(staff_user):
    response = admin_login(Client(), PASSWORD)

    assert response.status_code == 302
    assert response["Location"] == "/admin/"


def test_admin_login_locks_the_address_out_after_five_failures(staff_user):
    client = Client()
    failures = [admin_login(client, f"wrong-{n}").status_code for n in range(4)]

    fifth = admin_login(client, "wrong-5")
    with_the_right_password = admin_login(client, PASSWORD)

    assert failures == [200] * 4  # the form again, with its error
    assert fifth.status_code == 429
    assert with_the_right_password.status_code == 429
    assert with_the_right_password["Content-Type"] == "application/json"
    assert "locked" in with_the_right_password.json()["detail"]
    assert int(with_the_right_password["Retry-After"]) == 15 * 60


def test_admin_lockout_is_per_client_address(staff_user):
    locked = Client(REMOTE_ADDR="198.51.100.1")
    for n in range(5):
        admin_login(locked, f"wrong-{n}")

    assert admin_login(locked, PASSWORD).status_code == 429
    assert admin_login(Client(REMOTE_ADDR="198.51.100.2"), PASSWORD).status_code == 302


# Transactional: the API login view runs outside the request transaction, as in production.
@pytest.mark.django_db(transaction=True)
def test_failed_api_logins_neither_count_for_the_admin_nor_lock_the_api(staff_user):
    api = Client()
    statuses = [
        api.post(
            "/api/token/",
            {"username": "carol", "password": f"wrong-{n}"},
            content_type="application/json",
        ).status_code
        for n in range(8)
    ]

    assert statuses == [401] * 8  # the API login has its own throttle: 10 a minute
    assert admin_login(Client(), PASSWORD).status_code == 302


@pytest.mark.parametrize("length", [151, 256, 5000])
def test_an_admin_login_with_a_name_longer_than_any_is_a_failed_login_that_counts(
    staff_user, length
):
    from axes.models import AccessAttempt

    client = Client()
    responses = [admin_login(client, "wrong", username="u" * length) for _ in range(5)]

    assert [response.status_code for response in responses] == [200] * 4 + [429]
    assert AccessAttempt.objects.get().failures_since_start == 5


@pytest.mark.parametrize(
    ("method", "path"),
    [("get", "/admin/logout/"), ("delete", "/admin/login/"), ("patch", "/admin/login/")],
)
def test_a_method_the_admin_does_not_take_is_a_json_405_naming_it(staff_user, method, path):
    client = Client(enforce_csrf_checks=False)
    client.force_login(staff_user)

    response = getattr(client, method)(path)

    assert response.status_code == 405
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": f'Method "{method.upper()}" not allowed.'}
    assert "POST" in response["Allow"]
