"""schemathesis over /api/openapi.json: generated requests to every operation, signed in with a
personal API key, within a bounded budget — no answer is a server error (5xx).

The requests go through Django's test client (in the test's database transaction), built from each
generated case: path, query, headers and body as schemathesis made them."""
from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest
import schemathesis
from django.test import Client
from hypothesis import HealthCheck, settings

from accounts.models import Role
from accounts.services import api_key_create
from portal.api import api

EXAMPLES_PER_OPERATION = 8  # the budget: about 200 requests over the whole API


schema = schemathesis.openapi.from_dict(api.get_openapi_schema())  # (what /api/openapi.json serves)


@pytest.fixture
def api_key(make_user):
    user = make_user("fuzz", role=Role.objects.create(name="API", can_use_api=True))
    return api_key_create(user=user, name="fuzz").key


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_no_generated_request_gets_a_server_error(case, api_key):
    headers = {key: str(value) for key, value in (case.headers or {}).items()}
    headers["Authorization"] = f"Bearer {api_key}"
    path = case.formatted_path + ("?" + urlencode(case.query, doseq=True) if case.query else "")
    kwargs = {}
    if case.body is not None and case.body is not schemathesis.core.NOT_SET:
        body = case.body if isinstance(case.body, bytes) else json.dumps(case.body)
        kwargs = {"data": body, "content_type": case.media_type or "application/json"}
    response = Client().generic(case.method, path, headers=headers, **kwargs)

    assert response.status_code < 500, f"{case.method} {path} {kwargs}: {response.content[:500]!r}"
