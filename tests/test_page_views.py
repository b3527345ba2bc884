"""The chat page's views (chat/page_views.py): `/` is a new chat and `/c/<id>` one of the user's own
conversations, drawn from the tree GET /api/conversations/{id} serves; another user's conversation
is a 404, a signed-out visitor goes to the sign-in page (never to /admin/), a role without chat
gets a page saying so. (The account facts of the former landing page move to the settings.)"""
from __future__ import annotations

import json
import re
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chat.models import Conversation, Message

PASSWORD = "Correct-Horse-42-battery"


def page_data(response) -> dict:
    found = re.search(r'<script id="chat-data" type="application/json">(.*?)</script>', response.content.decode(), re.S)
    assert found, "the page embeds its data"
    return json.loads(found.group(1))


@pytest.fixture
def alice(builtin_roles, make_user):
    from allauth.account.models import EmailAddress

    user = make_user("alice", name="Alice Example", password=PASSWORD)
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    return user


@pytest.fixture
def convo(alice, make_endpoint):
    endpoint = make_endpoint("Acme", models=("acme-large",), model_display_label="Acme AI",
                             icon_url="/static/favicon.svg")
    conversation = Conversation.objects.create(user=alice, title="Trip plans", endpoint=endpoint, model="acme-large")
    question = Message.objects.create(conversation=conversation, user=alice, role="user", text="Where to go?")
    first = Message.objects.create(conversation=conversation, user=alice, role="assistant", parent=question,
                                   text="Lisbon.", endpoint=endpoint, model="acme-large", sender="Acme AI")
    second = Message.objects.create(conversation=conversation, user=alice, role="assistant", parent=question,
                                    text="Porto <b>really</b>.", endpoint=endpoint, model="acme-large",
                                    sender="Acme AI")
    return {"conversation": conversation, "question": question, "first": first, "second": second}


def test_a_signed_in_user_lands_on_a_new_chat(client, alice):
    signed_in = client.post("/accounts/login/", {"login": "alice", "password": PASSWORD})
    page = client.get(signed_in["Location"])
    html = page.content.decode()

    assert signed_in["Location"] == "/"
    assert page.status_code == 200
    assert '<main id="app-main" class="chat-main"' in html and 'id="composer-input"' in html
    assert page_data(page) == {"conversation": None, "messages": [], "current_message_id": None, "endpoints": {},
                               "focus": None}
    assert "csrftoken" in page.cookies  # fetch() POSTs read it
    assert "/admin/" not in html  # no admin link for non-staff


def test_staff_find_the_admin_in_the_account_menu(client, builtin_roles, make_user):
    client.force_login(make_user("sam", is_staff=True))

    html = client.get("/").content.decode()

    assert 'href="/admin/"' in html


def test_signed_out_visitors_are_sent_to_the_sign_in_page_not_the_admin(client, convo):
    for path in ("/", f"/c/{convo['conversation'].pk}"):
        response = client.get(path)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")


def test_the_owner_sees_the_conversation_with_its_whole_tree(client, alice, convo):
    client.force_login(alice)

    response = client.get(f"/c/{convo['conversation'].pk}")
    data = page_data(response)

    assert response.status_code == 200
    assert "<title>Trip plans · Atrium</title>" in response.content.decode()
    assert data["conversation"]["id"] == str(convo["conversation"].pk)
    assert data["conversation"]["model"] == "acme-large" and data["conversation"]["endpoint"] == "Acme"
    assert [m["text"] for m in data["messages"]] == ["Where to go?", "Lisbon.", "Porto <b>really</b>."]
    question = data["messages"][0]
    assert [m["parent_id"] for m in data["messages"]] == [None, question["id"], question["id"]]
    assert [m["current"] for m in data["messages"]] == [True, False, True]
    assert data["current_message_id"] == str(convo["second"].pk)
    assert data["endpoints"] == {"Acme": {"icon_url": "/static/favicon.svg", "label": "Acme AI", "kind": "custom"}}
    assert "Porto <b>really</b>" not in response.content.decode()  # embedded as JSON, escaped


def test_the_tree_is_the_one_the_rest_api_serves(client, alice, convo):
    client.force_login(alice)

    embedded = page_data(client.get(f"/c/{convo['conversation'].pk}"))["messages"]
    served = client.get(f"/api/conversations/{convo['conversation'].pk}").json()["messages"]

    fields = ("id", "parent_id", "role", "text", "current", "model", "sender", "endpoint", "unfinished", "error")
    assert [{k: m[k] for k in fields} for m in embedded] == [{k: m[k] for k in fields} for m in served]
    assert [m["usage"]["cost"] if m["usage"] else None for m in embedded] == [None, None, None]  # nothing billed


def test_another_users_conversation_is_not_found(client, convo, make_user):
    client.force_login(make_user("mallory"))

    assert client.get(f"/c/{convo['conversation'].pk}").status_code == 404
    assert client.get(f"/c/{convo['conversation'].pk}?m={convo['first'].pk}").status_code == 404


def test_m_opens_the_conversation_at_that_message_and_ignores_a_foreign_one(client, alice, convo, make_user):
    client.force_login(alice)
    path = f"/c/{convo['conversation'].pk}"
    other = make_user("oscar")
    foreign_convo = Conversation.objects.create(user=other, title="x")
    foreign = Message.objects.create(conversation=foreign_convo, user=other, role="user", text="secret")

    assert page_data(client.get(f"{path}?m={convo['first'].pk}"))["focus"] == str(convo["first"].pk)
    assert page_data(client.get(f"{path}?m={foreign.pk}"))["focus"] is None
    assert page_data(client.get(f"{path}?m=not-a-uuid"))["focus"] is None


def test_a_role_without_chat_gets_a_page_saying_so(client, make_role, make_user):
    client.force_login(make_user(role=make_role("READERS", label="Readers", can_chat=False)))

    response = client.get("/")

    assert response.status_code == 403
    assert "does not include chat" in response.content.decode()
    assert 'id="composer-input"' not in response.content.decode()


def test_a_long_conversation_opens_in_a_fixed_number_of_queries(client, alice, make_endpoint, make_role):
    """No query per message: the page reads the conversation, its messages and their costs at once."""
    from billing.services import record_usage
    from endpoints.adapters.types import Usage

    rates = {"prompt_rate": Decimal(1), "completion_rate": Decimal(2)}
    endpoint = make_endpoint("Acme", models=("acme-large",), rates=rates)
    conversation = Conversation.objects.create(user=alice, title="long", endpoint=endpoint, model="acme-large")
    client.force_login(alice)
    parent = None

    def grow(count: int) -> None:
        nonlocal parent
        for i in range(count):
            parent = Message.objects.create(conversation=conversation, user=alice, parent=parent, text=f"m{i}",
                                            role="user" if i % 2 == 0 else "assistant", endpoint=endpoint)
            if i % 2:
                record_usage(user=alice, endpoint=endpoint, model="acme-large", context="message", message=parent,
                             conversation=conversation, usage=Usage.from_openai(prompt_tokens=10, completion_tokens=5))

    def open_page() -> tuple[dict, int]:
        client.get(f"/c/{conversation.pk}")  # (first-use rows such as the portal settings are made once)
        with CaptureQueriesContext(connection) as queries:
            response = client.get(f"/c/{conversation.pk}")
        assert response.status_code == 200
        return page_data(response), len(queries)

    grow(4)
    _, few = open_page()
    grow(40)
    data, many = open_page()

    assert len(data["messages"]) == 44 and data["messages"][1]["usage"]["cost"]
    assert many == few  # (the sidebar, the selector and the balance badge read what they need once each)
