"""The admin as a company administrator uses it: every page loads, secrets never come back."""
from __future__ import annotations

import pytest
from django.apps import apps
from django.contrib import admin
from django.urls import reverse

from endpoints.models import Endpoint, ModelSpec, UserProviderKey
from portal.models import PortalSettings

SECRET = "sk-live-VERYSECRET-abcdef123456wxyz"


@pytest.fixture
def populated(db, make_user, make_endpoint):
    from chat.models import Conversation, Message, Preset

    user = make_user("alice")
    endpoint = make_endpoint("Groq", api_key=SECRET, models=("llama3-8b",))
    spec = ModelSpec.objects.create(name="fast", label="Fast", endpoint=endpoint, model="llama3-8b")
    convo = Conversation.objects.create(user=user, title="Hello", endpoint=endpoint, model="llama3-8b")
    Message.objects.create(
        conversation=convo, user=user, role="user", text="hi", content=[{"type": "text", "text": "hi"}]
    )
    Preset.objects.create(user=user, title="p", endpoint=endpoint, model="llama3-8b")
    UserProviderKey.objects.create(user=user, endpoint=endpoint, api_key="sk-user-OWNKEY-99999999")
    PortalSettings.load()
    return {"endpoint": endpoint, "spec": spec, "user": user}


def registered_models():
    return [m for m in apps.get_models() if m in admin.site._registry]


@pytest.mark.parametrize("model", registered_models(), ids=lambda m: m._meta.label)
def test_every_admin_list_and_form_loads(admin_client, populated, model):
    opts = model._meta
    changelist = admin_client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"), follow=True)
    assert changelist.status_code == 200
    model_admin = admin.site._registry[model]
    request = changelist.wsgi_request
    if model_admin.has_add_permission(request):
        add = admin_client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_add"))
        assert add.status_code == 200
    obj = model.objects.first()
    if obj is not None:
        change = admin_client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk]))
        assert change.status_code == 200


def test_secrets_never_appear_in_admin_pages(admin_client, populated):
    endpoint = populated["endpoint"]
    pages = [
        reverse("admin:endpoints_endpoint_changelist"),
        reverse("admin:endpoints_endpoint_change", args=[endpoint.pk]),
        reverse("admin:endpoints_userproviderkey_changelist"),
        reverse("admin:endpoints_userproviderkey_change", args=[UserProviderKey.objects.get().pk]),
    ]
    for url in pages:
        html = admin_client.get(url).content.decode()
        assert SECRET not in html and "OWNKEY" not in html, url
    change = admin_client.get(pages[1]).content.decode()
    assert "wxyz" in change  # the masked tail helps recognise the key


def endpoint_post_data(endpoint: Endpoint, **overrides) -> dict:
    data = {
        "name": endpoint.name, "kind": endpoint.kind, "provider": endpoint.provider, "enabled": "on",
        "ordering": "0", "auth_kind": endpoint.auth_kind, "api_key": "", "base_url": endpoint.base_url,
        "query_params": "{}", "headers": "{}", "title_timing": "immediate", "title_method": "completion",
        "title_model": "gpt-3.5-turbo", "title_message_role": "system", "title_prompt": "",
        "title_prompt_template": "User: {input}\nAI: {output}", "add_params": "{}", "drop_params": "[]",
        "custom_params": "{}", "model_display_label": "AI", "icon_url": "",
        "models-TOTAL_FORMS": "1", "models-INITIAL_FORMS": "1", "models-MIN_NUM_FORMS": "1",
        "models-MAX_NUM_FORMS": "1000",
    }
    model = endpoint.models.get()
    data.update({
        "models-0-id": str(model.pk), "models-0-endpoint": str(endpoint.pk), "models-0-name": model.name,
        "models-0-listed": "on", "models-0-ordering": "0",
    })
    data.update(overrides)
    return data


def test_saving_an_endpoint_without_retyping_the_key_keeps_it(admin_client, populated):
    endpoint = populated["endpoint"]
    url = reverse("admin:endpoints_endpoint_change", args=[endpoint.pk])
    response = admin_client.post(url, endpoint_post_data(endpoint, model_display_label="Groq"))
    assert response.status_code == 302, response.content.decode()[:2000]
    endpoint.refresh_from_db()
    assert endpoint.api_key == SECRET and endpoint.model_display_label == "Groq"


def test_an_env_reference_replaces_the_key_and_stays_visible(admin_client, populated):
    endpoint = populated["endpoint"]
    url = reverse("admin:endpoints_endpoint_change", args=[endpoint.pk])
    response = admin_client.post(url, endpoint_post_data(endpoint, api_key="${GROQ_API_KEY}"))
    assert response.status_code == 302
    endpoint.refresh_from_db()
    assert endpoint.api_key == "${GROQ_API_KEY}"
    assert "${GROQ_API_KEY}" in admin_client.get(url).content.decode()


def test_admin_shows_validation_messages(admin_client, populated):
    endpoint = populated["endpoint"]
    url = reverse("admin:endpoints_endpoint_change", args=[endpoint.pk])
    response = admin_client.post(url, endpoint_post_data(
        endpoint, name="anthropic", title_prompt="Give a title", headers='{"X-Count": 5}',
    ))
    assert response.status_code == 200
    html = response.content.decode()
    assert "is a reserved endpoint name" in html
    assert "titlePrompt must contain the {convo} placeholder." in html
    assert "must be a string" in html
    endpoint.refresh_from_db()
    assert endpoint.name == "Groq"


def test_an_endpoint_needs_a_listed_model(admin_client, populated):
    endpoint = populated["endpoint"]
    url = reverse("admin:endpoints_endpoint_change", args=[endpoint.pk])
    response = admin_client.post(url, endpoint_post_data(endpoint, **{"models-0-DELETE": "on"}))
    assert response.status_code == 200
    assert "models.default is required" in response.content.decode()
    assert endpoint.models.count() == 1


def test_an_admin_creates_an_endpoint_from_the_catalogue_in_one_step(admin_client, db):
    url = reverse("admin:endpoints_endpoint_catalogue")
    assert admin_client.get(url).status_code == 200
    response = admin_client.post(
        url, {"provider": "groq", "name": "", "api_key": "gsk_pasted_key_1234567890", "models": ""}
    )
    assert response.status_code == 302
    endpoint = Endpoint.objects.get(name="Groq")
    assert endpoint.base_url == "https://api.groq.com/openai/v1"
    assert endpoint.provider == "openai_chat" and endpoint.api_key == "gsk_pasted_key_1234567890"
    assert list(endpoint.models.values_list("name", flat=True)) == [
        "llama-3.3-70b-versatile", "mixtral-8x7b-32768", "gemma2-9b-it",
    ]
    # a second one with the same name is refused with a readable message
    again = admin_client.post(url, {"provider": "groq", "name": "GROQ", "api_key": "", "models": "x"})
    assert again.status_code == 200 and "already exists" in again.content.decode()


def test_catalogue_without_a_key_uses_the_providers_env_variable(db):
    from endpoints.catalogue import PROVIDERS, create_endpoint_from_catalogue

    assert len(PROVIDERS) == 25
    endpoint = create_endpoint_from_catalogue(provider_key="anthropic")
    assert (endpoint.name, endpoint.kind, endpoint.provider) == ("anthropic", "anthropic", "anthropic")
    assert endpoint.api_key == "${ANTHROPIC_API_KEY}" and endpoint.models_fetch is False
    local = create_endpoint_from_catalogue(provider_key="ollama", name="Ollama")
    assert local.api_key == "" and local.auth_kind == "none"


def test_builtin_roles_cannot_be_deleted_in_the_admin(admin_client, db):
    from accounts.models import Role

    user_role = Role.objects.get(name="USER")
    response = admin_client.get(reverse("admin:accounts_role_delete", args=[user_role.pk]))
    assert response.status_code == 403


def test_portal_settings_open_on_their_single_row(admin_client, db):
    response = admin_client.get(reverse("admin:portal_portalsettings_changelist"))
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:portal_portalsettings_change", args=[1])


def test_large_tables_never_count_everything(admin_client, populated, django_assert_max_num_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        assert admin_client.get(reverse("admin:chat_message_changelist")).status_code == 200
    counts = [q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]
    assert counts and all("LIMIT" in sql.upper() for sql in counts), counts


def test_add_params_that_would_replace_the_conversation_are_refused_with_a_clear_message(admin_client, populated):
    endpoint = populated["endpoint"]
    url = reverse("admin:endpoints_endpoint_change", args=[endpoint.pk])
    response = admin_client.post(url, endpoint_post_data(endpoint, add_params='{"messages": [], "web_search": true}'))

    assert response.status_code == 200
    assert "addParams may not set messages: Atrium sets this field on every request itself" in response.content.decode()
    endpoint.refresh_from_db()
    assert endpoint.add_params == {}


def test_the_role_page_offers_only_the_permissions_of_features_that_exist(admin_client, builtin_roles):
    from accounts.models import Role

    role = Role.objects.get(name="USER")
    html = admin_client.get(reverse("admin:accounts_role_change", args=[role.pk])).content.decode()

    for offered in ("can_chat", "can_choose_models", "can_use_bookmarks", "can_use_presets",
                    "can_temporary_chat", "can_share_conversations", "can_use_api"):
        assert f'name="{offered}"' in html
    for hidden in ("can_web_search", "can_use_agents", "can_run_code", "can_use_memories"):
        assert f'name="{hidden}"' not in html
    assert role.can_use_memories is True  # the column and its default are kept for when the feature lands


def test_the_user_form_offers_roles_not_djangos_groups_and_permissions(admin_client, make_user):
    user = make_user("bob")
    html = admin_client.get(reverse("admin:accounts_user_change", args=[user.pk])).content.decode()

    assert 'name="role"' in html and 'name="is_staff"' in html
    assert 'name="groups"' not in html and 'name="user_permissions"' not in html


def test_every_admin_page_has_a_favicon_and_view_site_leads_to_the_portal_not_back_to_the_admin(admin_client, client):
    index = admin_client.get(reverse("admin:index")).content.decode()

    assert 'rel="icon"' in index and '<a href="/">View site</a>' in index
    assert admin_client.get("/").status_code == 200  # the landing page, not a redirect to /admin/
    favicon = client.get("/favicon.ico")
    assert favicon.status_code == 301 and favicon["Location"].endswith("favicon.svg")


def test_catalogue_provider_names_are_cased_as_the_providers_write_them():
    from endpoints.catalogue import BY_KEY

    names = {key: BY_KEY[key].name for key in ("xai", "groq", "ollama", "deepseek", "openrouter")}
    assert names == {
        "xai": "xAI",
        "groq": "Groq",
        "ollama": "Ollama",
        "deepseek": "DeepSeek",
        "openrouter": "OpenRouter",
    }
