"""The REST API's resources as their owner uses them: conversations (pages, filters, the message
tree, rename, delete, fork), a message's tokens and cost, the model selector's data, provider keys,
balance, ledger and usage. Who else may see them: tests/test_api_access.py."""
from __future__ import annotations

import datetime as dt

import pytest

from accounts.models import Role
from billing.models import Transaction
from chat.models import Conversation, Message
from endpoints.models import ModelSpec, UserProviderKey
from portal.models import PortalSettings
from tests.apidata import seed


@pytest.fixture
def api_role(db):
    return Role.objects.create(name="API", can_use_api=True)


@pytest.fixture
def owner(make_user, api_role):
    return make_user("olga", role=api_role)


@pytest.fixture
def owned(owner, make_endpoint):
    endpoint = make_endpoint("Acme", models=("test-model", "other-model"))
    keyed = make_endpoint("BYOK", api_key="user_provided")
    return seed(owner, endpoint, keyed)


@pytest.fixture
def api(client, owned):
    client.force_login(owned.user)
    return client


def test_conversations_are_listed_newest_first_a_page_at_a_time(api, owned):
    for n in range(4):
        Conversation.objects.create(user=owned.user, title=f"Later {n}")

    first = api.get("/api/conversations?limit=3").json()
    second = api.get(f"/api/conversations?limit=3&cursor={first['next_cursor']}").json()

    titles = [c["title"] for c in first["items"] + second["items"]]
    assert titles == ["Later 3", "Later 2", "Later 1", "Later 0", "Owner's plans"]
    assert second["next_cursor"] is None


def test_conversations_filter_by_endpoint_model_and_day(api, owned):
    Conversation.objects.create(user=owned.user, title="Other model", endpoint_name="Acme", model="other-model")
    Conversation.objects.filter(pk=owned.conversation.pk).update(updated_at=dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC))

    by_model = api.get("/api/conversations?model=other-model").json()["items"]
    by_endpoint = api.get("/api/conversations?endpoint=Acme").json()["items"]
    on_day = api.get("/api/conversations?since=2026-03-01&until=2026-03-01").json()["items"]
    elsewhere = api.get("/api/conversations?endpoint=Nowhere").json()["items"]

    assert [c["title"] for c in by_model] == ["Other model"]
    assert {c["title"] for c in by_endpoint} == {"Other model", "Owner's plans"}
    assert [c["title"] for c in on_day] == ["Owner's plans"]
    assert elsewhere == []


def test_conversations_filter_by_archived_temporary_and_bookmark_and_carry_their_bookmarks(api, owned):
    from chat.models import Tag

    archived = Conversation.objects.create(user=owned.user, title="Archived", archived=True)
    Conversation.objects.create(user=owned.user, title="Temporary", temporary=True)
    work = Tag.objects.create(user=owned.user, name="work")
    archived.tags.add(work, Tag.objects.create(user=owned.user, name="2026"))

    def titles(query: str) -> list[str]:
        return sorted(c["title"] for c in api.get(f"/api/conversations?{query}").json()["items"])

    assert titles("archived=false&temporary=false") == ["Owner's plans"]
    assert titles("archived=true") == ["Archived"]
    assert titles("temporary=true") == ["Temporary"]
    assert titles("tag=work&archived=true") == ["Archived"] and titles("tag=work") == []  # (archived: asked for)
    assert titles("tag=nothing") == []
    listed = {c["title"]: c["tags"] for c in api.get("/api/conversations?archived=true").json()["items"]}
    assert listed["Archived"] == ["2026", "work"]
    listed = {c["title"]: c["tags"] for c in api.get("/api/conversations").json()["items"]}
    assert listed["Owner's plans"] == ["Owner's plans tag"]


def test_a_bad_cursor_is_a_422_with_the_one_error_body(api):
    response = api.get("/api/conversations?cursor=not-ours")

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid" and "cursor" in response.json()["error"]["message"]


def test_a_conversation_comes_with_its_whole_tree_siblings_and_current_branch(api, owned):
    thread = api.get(f"/api/conversations/{owned.conversation.pk}").json()

    by_id = {m["id"]: m for m in thread["messages"]}
    q1, a1, q2, a2 = (str(m.pk) for m in (owned.first_question, owned.first_answer, owned.edited_question,
                                          owned.edited_answer))
    assert list(by_id) == [q1, a1, q2, a2]
    assert by_id[q1]["siblings"] == by_id[q2]["siblings"] == [q1, q2]
    assert by_id[q1]["children"] == [a1] and by_id[a1]["parent_id"] == q1
    assert [m["id"] for m in thread["messages"] if m["current"]] == [q2, a2]
    assert thread["current_message_id"] == a2
    assert by_id[a1]["usage"]["prompt_tokens"] == 1200 and by_id[a1]["usage"]["credits"] == "8.100000"


def test_a_message_shows_its_tokens_and_what_it_cost(api, owned):
    message = api.get(f"/api/messages/{owned.first_answer.pk}").json()

    assert message["text"] == "Plan A." and message["tokens"]["prompt"] == 1200
    assert message["usage"] == {
        "prompt_tokens": 1200, "completion_tokens": 300, "cache_read_tokens": 0, "cache_write_tokens": 0,
        "credits": "8.100000", "cost": message["usage"]["cost"], "estimated": False,
    }
    assert "$" in message["usage"]["cost"]


def test_renaming_and_deleting_a_conversation(api, owned):
    renamed = api.patch(f"/api/conversations/{owned.conversation.pk}", {"title": "Renamed"},
                        content_type="application/json")
    deleted = api.delete(f"/api/conversations/{owned.conversation.pk}")

    assert renamed.status_code == 200 and renamed.json()["title"] == "Renamed"
    assert deleted.status_code == 204
    assert not Conversation.objects.filter(pk=owned.conversation.pk).exists()
    assert Transaction.objects.filter(user=owned.user, tokens__in=(1200, 300)).count() == 2  # the ledger keeps them


def test_forking_a_branch_copies_it_into_a_new_conversation(api, owned):
    response = api.post(f"/api/messages/{owned.first_answer.pk}/fork")

    fork = Conversation.objects.get(pk=response.json()["id"])
    copies = list(Message.objects.filter(conversation=fork).order_by("created_at"))
    assert response.status_code == 201 and fork.user == owned.user and fork.endpoint_name == "Acme"
    assert [m.text for m in copies] == ["What is our plan?", "Plan A."]
    assert copies[1].parent_id == copies[0].pk and copies[0].parent_id is None
    assert {m.pk for m in copies}.isdisjoint({owned.first_question.pk, owned.first_answer.pk})


def test_the_model_selector_data_lists_what_the_role_may_use_in_order(api, owned, make_endpoint):
    from endpoints.models import EndpointModel

    EndpointModel.objects.filter(endpoint__name="Acme", name="test-model").update(
        label="Test Model", context_tokens=128000, supports_vision=True, prompt_rate="2.5", completion_rate="10")
    ModelSpec.objects.create(name="helper", label="Helper", endpoint=owned.conversation.endpoint, model="test-model",
                             is_default=True)
    hidden = make_endpoint("Hidden")
    owned.user.role.allowed_endpoints.add(owned.conversation.endpoint, owned.keyed_endpoint)

    offer = api.get("/api/models").json()

    assert [e["name"] for e in offer["endpoints"]] == ["Acme", "BYOK"] and hidden.name not in str(offer)
    acme = offer["endpoints"][0]
    assert [m["name"] for m in acme["models"]] == ["test-model", "other-model"]
    assert acme["models"][0]["label"] == "Test Model" and acme["models"][0]["context_tokens"] == 128000
    assert acme["models"][0]["capabilities"]["vision"] is True
    assert acme["models"][0]["rates"]["prompt"] == "2.5000000000" or float(acme["models"][0]["rates"]["prompt"]) == 2.5
    assert offer["endpoints"][1]["user_provides_key"] is True
    assert [s["name"] for s in offer["specs"]] == ["helper"] and offer["specs"][0]["is_default"] is True
    assert offer["free_choice"] is True and offer["enforce"] is False


def test_enforced_model_specs_leave_only_the_specs(api, owned):
    ModelSpec.objects.create(name="helper", label="Helper", endpoint=owned.conversation.endpoint, model="test-model")
    PortalSettings.objects.update_or_create(pk=1, defaults={"model_specs_enforce": True})

    offer = api.get("/api/models").json()

    assert offer["enforce"] is True and offer["free_choice"] is False
    assert offer["endpoints"] == [] and [s["name"] for s in offer["specs"]] == ["helper"]


def test_provider_keys_are_set_listed_and_deleted_but_never_read_back(api, owned):
    UserProviderKey.objects.filter(user=owned.user).delete()

    put = api.put("/api/provider-keys/BYOK", {"api_key": "sk-my-very-own-key-987"},
                  content_type="application/json")
    listed = api.get("/api/provider-keys")
    deleted = api.delete("/api/provider-keys/BYOK")

    assert put.status_code == 200 and "sk-my-very-own" not in put.content.decode()
    assert listed.json()[0]["endpoint"] == "BYOK" and "sk-my-very-own" not in listed.content.decode()
    assert UserProviderKey.objects.count() == 0 and deleted.status_code == 204


def test_a_provider_key_for_an_endpoint_that_takes_none_is_not_found(api, owned):
    response = api.put("/api/provider-keys/Acme", {"api_key": "sk-x"}, content_type="application/json")

    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_balance_ledger_and_usage_by_day(api, owned):
    balance = api.get("/api/balance").json()
    ledger = api.get("/api/transactions?limit=2").json()
    older = api.get(f"/api/transactions?limit=50&cursor={ledger['next_cursor']}").json()
    usage = api.get("/api/usage?start=2026-03-01&end=2026-03-01").json()

    assert set(balance) >= {"credits", "available", "display", "currency"}
    assert [row["token_type"] for row in ledger["items"]] == ["completion", "prompt"]
    assert ledger["items"][0]["credits"] == "-4.500000" and ledger["items"][0]["message_id"] is not None
    assert older["items"] and {row["token_type"] for row in older["items"]}.isdisjoint({"completion", "prompt"})
    assert older["next_cursor"] is None
    assert len(usage) == 1 and usage[0]["day"] == "2026-03-01"
    assert usage[0]["prompt_tokens"] == 1200 and usage[0]["credits"] == "8.100000"
