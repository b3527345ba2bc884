"""The model selector's template tag (chat/templatetags/selector_tags.py, chat/page_selector.py):
it draws the data GET /api/models serves, scoped to the user's role, and a conversation's choice
only for its owner. The page in a real browser: tests/test_page_selector.py."""
from __future__ import annotations

import json

import pytest
from django.template import engines
from django.test import RequestFactory

from chat.models import Conversation
from chat.page_selector import icon_for
from endpoints.models import ModelSpec
from portal.models import PortalSettings

TEMPLATE = '{% include "chat/selector.html" %}'


def render(user, *, path="/", conversation=None):
    request = RequestFactory().get(path)
    request.user = user
    return engines["django"].from_string(TEMPLATE).render({"conversation": conversation}, request)


def json_script(html, element_id):
    marker = f'id="{element_id}" type="application/json">'
    start = html.index(marker) + len(marker)
    return json.loads(html[start:html.index("</script>", start)])


@pytest.fixture
def setup(make_role, make_user, make_endpoint):
    role = make_role("STAFFERS")
    acme = make_endpoint("Acme", models=("acme-small", "acme-large"), kind="openAI",
                         custom_params={"paramDefinitions": [
                             {"key": "temperature", "default": 0.3, "range": {"min": 0, "max": 1, "step": 0.1}},
                             {"key": "safe_mode", "type": "boolean", "label": "Safe mode", "default": True},
                             {"key": "messages", "type": "string"}]})
    other = make_endpoint("Other", models=("other-1",), kind="anthropic")
    spec = ModelSpec.objects.create(name="writer", label="Writer", description="Writes well", group="Favourites",
                                    endpoint=acme, model="acme-small", temperature="0.5", is_default=True)
    alice = make_user("alice", role=role)
    bob = make_user("bob", role=role)
    return {"role": role, "acme": acme, "other": other, "spec": spec, "alice": alice, "bob": bob}


def test_the_selector_draws_the_same_data_the_api_serves(client, setup):
    client.force_login(setup["alice"])
    served = client.get("/api/models").json()

    drawn = json_script(render(setup["alice"]), "selector-data")

    for part in (drawn, served):
        for item in part["specs"] + part["endpoints"]:
            item.pop("icon", None)
    assert drawn == json.loads(json.dumps(served))
    assert [e["name"] for e in drawn["endpoints"]] == ["Acme", "Other"]


def test_a_role_limited_to_one_endpoint_sees_only_it(setup):
    setup["role"].allowed_endpoints.add(setup["other"])

    html = render(setup["alice"])

    assert 'data-model="other-1"' in html and "acme-large" not in html
    assert [e["name"] for e in json_script(html, "selector-data")["endpoints"]] == ["Other"]


def test_specs_only_roles_and_enforce_leave_no_free_choice(setup):
    setup["role"].can_choose_models = False
    setup["role"].save()
    assert 'data-kind="model"' not in render(setup["alice"])

    setup["role"].can_choose_models = True
    setup["role"].save()
    PortalSettings.objects.update_or_create(pk=1, defaults={"model_specs_enforce": True})
    html = render(setup["alice"])

    assert 'data-kind="model"' not in html and 'data-spec="writer"' in html and "Writes well" in html


def test_a_role_sees_only_the_specs_it_may_use(setup):
    hidden = ModelSpec.objects.create(name="secret", label="Secret", endpoint=setup["acme"], model="acme-large")
    setup["role"].allowed_model_specs.add(setup["spec"])

    html = render(setup["alice"])

    assert 'data-spec="writer"' in html and hidden.label not in html


def test_param_definitions_reach_the_page_without_reserved_keys(setup):
    acme = json_script(render(setup["alice"]), "selector-data")["endpoints"][0]

    assert [d["key"] for d in acme["param_definitions"]] == ["temperature", "safe_mode"]
    assert acme["param_definitions"][0]["range"] == {"min": 0, "max": 1, "step": 0.1}
    assert json_script(render(setup["alice"]), "selector-data")["specs"][0]["params"] == {"temperature": 0.5}


def test_a_conversation_choice_is_shown_to_its_owner_only(setup):
    convo = Conversation.objects.create(user=setup["alice"], endpoint=setup["acme"], endpoint_name="Acme",
                                        model="acme-large", params={"temperature": 0.2}, system_prompt="Be brief")

    mine = json_script(render(setup["alice"], path=f"/c/{convo.pk}", conversation=convo), "selector-current")
    theirs = json_script(render(setup["bob"], path=f"/c/{convo.pk}", conversation=convo), "selector-current")

    assert mine["model"] == "acme-large" and mine["system_prompt"] == "Be brief" and mine["id"] == str(convo.pk)
    assert theirs is None


def test_presets_and_temporary_chat_follow_the_role_flags(setup):
    html = render(setup["alice"])
    assert 'id="presets"' in html and 'id="temporary-toggle"' in html
    assert 'id="temporary-toggle"' not in render(setup["alice"], path="/c/some-conversation")

    setup["role"].can_use_presets = False
    setup["role"].can_temporary_chat = False
    setup["role"].save()
    html = render(setup["alice"])

    assert 'id="presets"' not in html and 'id="temporary-toggle"' not in html


def test_signed_out_visitors_get_no_selector(setup):
    from django.contrib.auth.models import AnonymousUser

    assert render(AnonymousUser()).strip() == ""


def test_icons_come_from_known_keys_same_origin_paths_or_the_kind():
    assert icon_for("anthropic", "custom").endswith("chat/icons/anthropic.svg")
    assert icon_for("OPENAI", "custom").endswith("chat/icons/openAI.svg")
    assert icon_for("/static/my.svg", "google") == "/static/my.svg"
    assert icon_for("https://elsewhere.example/x.png", "google").endswith("chat/icons/google.svg")
    assert icon_for("//elsewhere.example/x.png", "bedrock").endswith("chat/icons/bedrock.svg")
    assert icon_for("", "unknown").endswith("chat/icons/custom.svg")
