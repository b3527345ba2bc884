"""Endpoint health: failed calls are kept (without secrets), the endpoint list shows them, and the
endpoint page's "Test connection" lists the models the endpoint answers with."""
from __future__ import annotations

import pytest
from django.urls import reverse

from endpoints.models import UpstreamFailure
from tests.streaming import final, run_chat

SECRET = "sk-live-HEALTHSECRET-1234567890"


@pytest.fixture
def endpoint(make_endpoint, upstream):
    return make_endpoint("Acme", base_url=upstream.base_url, api_key=SECRET, models=("test-model",))


def test_a_failed_call_is_recorded_with_the_message_the_user_saw_and_no_secret(endpoint, upstream):
    upstream.reply(status=401)

    error = final(run_chat(endpoint))

    failure = UpstreamFailure.objects.get()
    assert (failure.endpoint, failure.kind, failure.status, failure.model) == (endpoint, "auth", 401, "test-model")
    assert failure.message == error.message and SECRET not in failure.message


def test_a_successful_call_records_nothing(endpoint, upstream):
    upstream.reply(text="Fine.")

    run_chat(endpoint)

    assert not UpstreamFailure.objects.exists()


def test_the_endpoint_list_shows_recent_failures_and_the_demo_badge(admin_client, endpoint, upstream, make_endpoint):
    upstream.reply(status=500)
    run_chat(endpoint)
    make_endpoint("Atrium demo", catalogue_key="atrium-demo")

    html = admin_client.get(reverse("admin:endpoints_endpoint_changelist")).content.decode()

    assert "1 failed" in html and ">demo</span>" in html


def test_test_connection_lists_the_models_the_endpoint_answers_with(admin_client, endpoint, upstream):
    upstream.models(["model-a", "model-b"])
    change = reverse("admin:endpoints_endpoint_change", args=[endpoint.pk])
    assert "Test connection" in admin_client.get(change).content.decode()

    page = admin_client.post(reverse("admin:endpoints_endpoint_test_connection", args=[endpoint.pk]), follow=True)

    assert "Acme answered with 2 model(s): model-a, model-b." in page.content.decode()
    assert upstream.requests[-1].headers["authorization"] == f"Bearer {SECRET}"


def test_test_connection_says_why_an_endpoint_does_not_answer(admin_client, make_endpoint):
    closed = make_endpoint("Closed", base_url="http://127.0.0.1:9/v1")

    page = admin_client.post(reverse("admin:endpoints_endpoint_test_connection", args=[closed.pk]), follow=True)

    assert "Closed did not answer with a model list: ConnectError: the server could not be reached" in (
        page.content.decode())


def test_only_admins_can_test_a_connection(client, make_user, endpoint):
    client.force_login(make_user("mallory"))

    response = client.post(reverse("admin:endpoints_endpoint_test_connection", args=[endpoint.pk]))

    assert response.status_code == 302 and "/admin/login/" in response["Location"]
