"""A fresh install answers its first chat: `bootstrap` creates the demo endpoint, served by Atrium
itself, and the printed admin chats with it over a real socket to a real daphne."""
from __future__ import annotations

import io
import re

import pytest
from asgiref.sync import sync_to_async
from django.core.management import call_command
from django.test import Client

from billing.models import Transaction
from endpoints.models import Endpoint, ModelSpec
from tests.chatsocket import open_real_socket
from tests.daphne import Daphne

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("builtin_roles")]


@pytest.fixture
def daphne(django_db_setup, django_db_blocker):
    with Daphne(name="daphne-demo") as server:
        yield server


def bootstrap(settings, port: int) -> str:
    settings.SITE_URL = f"http://127.0.0.1:{port}"
    out = io.StringIO()
    call_command("bootstrap", stdout=out)
    return out.getvalue()


def signed_in_cookie(printed: str) -> str:
    password = re.search(r"username: admin\s+password: (\S+)", printed).group(1)
    client = Client()
    assert client.login(username="admin", password=password)
    return f"sessionid={client.cookies['sessionid'].value}"


async def test_the_printed_admin_gets_an_answer_from_the_demo_endpoint_without_any_provider(daphne, settings):
    printed = await sync_to_async(bootstrap)(settings, daphne.port)
    cookie = await sync_to_async(signed_in_cookie)(printed)

    socket = await open_real_socket(daphne.ws_url, cookie)
    try:
        answer = await socket.ask("What can you do?")  # no endpoint chosen: the default model spec
    finally:
        await socket.close()

    assert answer.errors == [] and answer.done["finish_reason"] == "stop", daphne.output()[-3000:]
    assert answer.text.startswith("**This is Atrium's demo model**")
    assert "You wrote: “What can you do?”" in answer.text
    assert "Add from provider catalogue" in answer.text
    assert len(answer.of_type("delta")) > 1  # streamed, not written at once
    assert answer.usage["usage"]["completion_tokens"] > 0
    billed = await sync_to_async(
        lambda: sorted(Transaction.objects.filter(context="message").values_list("token_type", flat=True))
    )()
    assert billed == ["completion", "prompt"]


def test_bootstrap_labels_the_demo_and_says_how_to_add_a_real_provider(db, builtin_roles, settings):
    printed = bootstrap(settings, 8000)

    endpoint = Endpoint.objects.get(name="Atrium demo")
    assert endpoint.base_url == "http://127.0.0.1:8000/demo/v1" and endpoint.auth_kind == "none"
    spec = ModelSpec.objects.get(is_default=True)
    assert spec.endpoint == endpoint and spec.label == "Demo assistant"
    assert "Add from provider catalogue" in printed


def test_the_demo_endpoint_follows_the_server_it_runs_on(db, builtin_roles, settings):
    bootstrap(settings, 8000)
    printed = bootstrap(settings, 8080)

    assert Endpoint.objects.get(name="Atrium demo").base_url == "http://127.0.0.1:8080/demo/v1"
    assert Endpoint.objects.filter(name="Atrium demo").count() == 1
    assert "now points at http://127.0.0.1:8080/demo/v1" in printed


async def test_the_demo_lists_its_model_and_refuses_a_request_without_messages(async_client):
    listed = await async_client.get("/demo/v1/models")
    refused = await async_client.post("/demo/v1/chat/completions", {"model": "atrium-demo"},
                                      content_type="application/json")

    assert [m["id"] for m in listed.json()["data"]] == ["atrium-demo"]
    assert refused.status_code == 400
    assert refused.json()["error"]["message"] == "'messages' must be a list of message objects."
