"""Rate limits per role (portal.ratelimit), as the REST API calls them: counted per user per
minute, in Redis when REDIS_URL is set, else in this process's memory."""
from __future__ import annotations

import pytest

from portal import ratelimit
from portal.ratelimit import RateLimited, check_request

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_counters():
    ratelimit.reset_memory()


def _requests_until_refused(call, attempts: int) -> tuple[int, RateLimited]:
    """(the windows are wall-clock minutes: a run straddling a minute's end counts again once)"""
    for made in range(1, attempts + 1):
        try:
            call()
        except RateLimited as refused:
            return made, refused
    raise AssertionError(f"not refused in {attempts} requests")


def test_a_role_without_limits_is_never_refused(make_role, make_user):
    user = make_user(role=make_role())
    for _ in range(50):
        check_request(user)


def test_a_users_requests_over_the_roles_limit_are_refused_with_a_retry_after(make_role, make_user):
    user = make_user(role=make_role(requests_per_minute=3))

    made, refused = _requests_until_refused(lambda: check_request(user), attempts=7)

    assert made in (4, 7)
    assert 1 <= refused.retry_after <= 60 and "3 requests per minute" in str(refused)


def test_each_user_has_a_count_of_their_own(make_role, make_user):
    role = make_role(requests_per_minute=1)
    first, second = make_user(role=role), make_user(role=role)
    check_request(first)
    check_request(second)  # not refused: the first user's request is not counted against them


def test_the_rest_api_answers_a_keys_requests_over_the_roles_limit_with_429(client, make_role, make_user):
    from accounts.services import api_key_create

    user = make_user(role=make_role(requests_per_minute=2, can_use_api=True))
    key = api_key_create(user=user, name="script").key

    responses = [client.get("/api/me", HTTP_AUTHORIZATION=f"Bearer {key}") for _ in range(6)]

    statuses = [r.status_code for r in responses]
    assert statuses[:2] == [200, 200] and 429 in statuses  # (a run over a minute's end counts again once)
    refused = next(r for r in responses if r.status_code == 429)
    assert refused.json()["error"]["code"] == "rate_limited" and 1 <= int(refused["Retry-After"]) <= 60
