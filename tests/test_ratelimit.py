"""Rate limits per role (portal.ratelimit), as the REST API calls them: counted per user per
minute, in Redis when REDIS_URL is set, else in this process's memory."""
from __future__ import annotations

import pytest
from django.http import HttpResponse
from django.test import RequestFactory

from portal import ratelimit
from portal.ratelimit import RateLimited, check_request, rate_limited

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


def test_the_decorator_counts_the_signed_in_users_requests(make_role, make_user):
    user = make_user(role=make_role(requests_per_minute=1))
    view = rate_limited(lambda request: HttpResponse("ok"))
    request = RequestFactory().get("/api/anything")
    request.user = user

    made, _refused = _requests_until_refused(lambda: view(request), attempts=3)

    assert made in (2, 3)
