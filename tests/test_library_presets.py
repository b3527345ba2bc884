"""Presets: saved endpoint + model + parameters + system prompt, checked against what the role may
use; shared with a role or (by staff) everyone; applied to a conversation. Owner, other user and
anonymous on every route."""
from __future__ import annotations

import pytest

from accounts.models import Role
from chat.models import Conversation, Preset


@pytest.fixture
def endpoint(make_endpoint, django_capture_on_commit_callbacks):
    # run what a commit runs (chat.configcache's version bump), as saving it in the admin would:
    # the test's transaction never commits, and the cache would keep a previous test's endpoint
    with django_capture_on_commit_callbacks(execute=True):
        return make_endpoint("Work GPT", models=("gpt-4o", "gpt-4o-mini"))


@pytest.fixture
def owner(make_user):
    return make_user("olga")


def body(**fields):
    return {"title": "Terse reviewer", "endpoint": "Work GPT", "model": "gpt-4o", "params": {"temperature": 0.2},
            "system_prompt": "Review code tersely.", **fields}


def create(client, **fields):
    return client.post("/api/library/presets", body(**fields), content_type="application/json")


def test_a_preset_is_saved_and_listed_as_the_owners(client, owner, endpoint):
    client.force_login(owner)

    created = create(client)
    [listed] = client.get("/api/library/presets").json()

    assert created.status_code == 201, created.content
    assert listed == {**created.json(), "mine": True}
    assert (listed["endpoint"], listed["model"], listed["params"], listed["system_prompt"]) == (
        "Work GPT", "gpt-4o", {"temperature": 0.2}, "Review code tersely.")


def test_a_model_the_endpoint_does_not_offer_is_refused(client, owner, endpoint):
    client.force_login(owner)

    response = create(client, model="gpt-9")

    assert response.status_code == 404
    assert "gpt-9" in response.json()["error"]["message"]
    assert not Preset.objects.exists()


def test_an_endpoint_the_role_may_not_use_is_refused(client, make_user, endpoint, make_endpoint):
    role = Role.objects.create(name="Limited")
    role.allowed_endpoints.add(make_endpoint("Other"))
    client.force_login(make_user("lena", role=role))

    response = create(client)

    assert response.status_code == 403
    assert not Preset.objects.exists()


def test_a_role_without_presets_is_refused(client, make_user, endpoint):
    client.force_login(make_user("nina", role=Role.objects.create(name="No presets", can_use_presets=False)))

    assert create(client).status_code == 403
    assert client.get("/api/library/presets").status_code == 403


def test_a_preset_shared_with_a_role_is_seen_by_that_role_only(client, owner, endpoint, make_user):
    client.force_login(owner)
    create(client, shared_roles=[owner.role.name])
    create(client, title="Private")
    other_role = Role.objects.create(name="Elsewhere")

    client.force_login(make_user("colleague", role=owner.role))
    colleague_sees = [(p["title"], p["mine"]) for p in client.get("/api/library/presets").json()]
    client.force_login(make_user("stranger", role=other_role))
    stranger_sees = client.get("/api/library/presets").json()

    assert colleague_sees == [("Terse reviewer", False)]
    assert stranger_sees == []


def test_only_staff_share_with_everyone_or_other_roles(client, owner, endpoint, admin_user, make_user):
    Role.objects.create(name="Sales")
    client.force_login(owner)

    refused_everyone = create(client, shared=True)
    refused_other_role = create(client, shared_roles=["Sales"])
    client.force_login(admin_user)
    curated = create(client, title="House style", shared=True)
    client.force_login(make_user("anyone"))
    seen = [p["title"] for p in client.get("/api/library/presets").json()]

    assert (refused_everyone.status_code, refused_other_role.status_code, curated.status_code) == (403, 403, 201)
    assert seen == ["House style"]


def test_applying_a_preset_sets_the_conversations_endpoint_model_and_prompt(client, owner, endpoint):
    conversation = Conversation.objects.create(user=owner, title="Chat")
    client.force_login(owner)
    preset = create(client, model="gpt-4o-mini").json()

    response = client.put(f"/api/library/conversations/{conversation.pk}/preset", {"preset_id": preset["id"]},
                          content_type="application/json")

    assert response.status_code == 200, response.content
    conversation.refresh_from_db()
    assert (conversation.endpoint, conversation.model, conversation.params, conversation.system_prompt) == (
        endpoint, "gpt-4o-mini", {"temperature": 0.2}, "Review code tersely.")


def test_another_user_can_neither_change_delete_nor_apply_a_private_preset(client, owner, endpoint, make_user):
    conversation = Conversation.objects.create(user=owner, title="Chat")
    client.force_login(owner)
    preset = create(client).json()
    other = make_user("otto")
    own_conversation = Conversation.objects.create(user=other, title="Mine")
    client.force_login(other)

    changed = client.put(f"/api/library/presets/{preset['id']}", body(title="Hijacked"),
                         content_type="application/json")
    deleted = client.delete(f"/api/library/presets/{preset['id']}")
    applied = client.put(f"/api/library/conversations/{own_conversation.pk}/preset", {"preset_id": preset["id"]},
                         content_type="application/json")
    onto_owners = client.put(f"/api/library/conversations/{conversation.pk}/preset", {"preset_id": preset["id"]},
                             content_type="application/json")

    assert (changed.status_code, deleted.status_code, applied.status_code, onto_owners.status_code) == (
        404, 404, 404, 404)
    assert Preset.objects.get().title == "Terse reviewer"


def test_the_owner_renames_and_deletes_a_preset(client, owner, endpoint):
    client.force_login(owner)
    preset = create(client).json()

    renamed = client.put(f"/api/library/presets/{preset['id']}", body(title="Gentle reviewer"),
                         content_type="application/json")
    deleted = client.delete(f"/api/library/presets/{preset['id']}")

    assert renamed.json()["title"] == "Gentle reviewer"
    assert deleted.status_code == 204
    assert not Preset.objects.exists()


def test_preset_routes_need_a_signed_in_user(client, owner, endpoint):
    preset = Preset.objects.create(user=owner, title="x", endpoint=endpoint, model="gpt-4o")
    conversation = Conversation.objects.create(user=owner, title="Chat")

    assert client.get("/api/library/presets").status_code == 401
    assert create(client).status_code == 401
    assert client.put(f"/api/library/presets/{preset.pk}", body(), content_type="application/json").status_code == 401
    assert client.delete(f"/api/library/presets/{preset.pk}").status_code == 401
    assert client.put(f"/api/library/conversations/{conversation.pk}/preset", {"preset_id": preset.pk},
                      content_type="application/json").status_code == 401
