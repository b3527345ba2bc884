"""The model selector, parameters panel, presets and temporary-chat toggle in a real headless
browser (Debian's chromium, Playwright), on a daphne serving the real chat page (`/`, `/c/<id>`),
whose header includes chat/selector.html. The frame the pane will send is read by dispatching
`atrium:before-send` from the test, as the pane does before every send."""
from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from tests.browser import browser_page

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("builtin_roles")]

SEND = """() => { const frame = {type: "send", text: "hi"};
  document.dispatchEvent(new CustomEvent("atrium:before-send", {detail: frame})); return frame; }"""


@pytest.fixture
def portal(make_role, make_user, make_endpoint):
    role = make_role("STAFFERS")
    acme = make_endpoint("Acme", models=("acme-small", "acme-large"), kind="openAI", custom_params={
        "paramDefinitions": [
            {"key": "temperature", "default": 0.3, "range": {"min": 0, "max": 1, "step": 0.1}},
            {"key": "safe_mode", "type": "boolean", "label": "Safe mode", "default": False},
        ]})
    acme.models.filter(name="acme-large").update(supports_reasoning=True, context_tokens=64000)
    claude = make_endpoint("Claude house", models=("claude-a", "claude-b"), kind="anthropic", provider="anthropic",
                           base_url="http://127.0.0.1:9")
    return {"role": role, "acme": acme, "claude": claude, "alice": make_user("alice", role=role),
            "bob": make_user("bob", role=role)}


async def ready(page, path="/"):
    await page.goto(page.base + path)
    await page.wait_for_selector("#selector[data-ready='1']")


async def choose(page, label):
    await page.click("#selector-button")
    await page.get_by_role("option", name=label).click()


async def test_enforced_specs_hide_free_choice(chromium, daphne, portal, shots):
    from endpoints.models import ModelSpec
    from portal.models import PortalSettings

    def setup():
        ModelSpec.objects.create(name="writer", label="Writer", description="Drafts letters", group="Writing",
                                 endpoint=portal["acme"], model="acme-small", temperature="0.7", is_default=True,
                                 order=1)
        ModelSpec.objects.create(name="coder", label="Coder", description="Reviews code", group="Engineering",
                                 endpoint=portal["claude"], model="claude-a", icon_url="anthropic", order=2)
        PortalSettings.objects.update_or_create(pk=1, defaults={"model_specs_enforce": True})

    await sync_to_async(setup)()
    async with browser_page(chromium, daphne, portal["alice"]) as page:
        await ready(page)
        assert await page.text_content("#selector-label") == "Writer"
        await page.click("#selector-button")
        options = page.get_by_role("option")
        assert await options.all_inner_texts() == ["Writer\nDrafts letters", "Coder\nReviews code"]
        assert await page.locator("#selector-list").get_by_text("Engineering").is_visible()
        assert await page.locator("[data-kind=model]").count() == 0
        await page.screenshot(path=str(shots / "selector-open.png"))
        await page.get_by_role("option", name="Coder").click()
        assert await page.text_content("#selector-label") == "Coder"
        await page.click("#params-button")
        assert "cannot be changed" in await page.text_content("#params-note")
        assert await page.locator("#params-fields input").first.is_disabled()
        assert await page.locator("#system-prompt").is_disabled()
        await page.keyboard.press("Escape")
        frame = await page.evaluate(SEND)
        assert frame == {"type": "send", "text": "hi", "spec": "coder"}
        assert page.console_errors == []


async def test_a_role_limited_to_one_endpoint_sees_only_it_and_picks_by_keyboard(chromium, daphne, portal):
    await sync_to_async(portal["role"].allowed_endpoints.add)(portal["claude"])
    async with browser_page(chromium, daphne, portal["alice"]) as page:
        await ready(page)
        assert await page.text_content("#selector-label") == "Claude house · claude-a"
        await page.focus("#selector-button")
        await page.keyboard.press("Enter")
        listbox = page.get_by_role("listbox")
        await listbox.wait_for()
        assert await page.get_by_role("option").all_inner_texts() == ["claude-a", "claude-b"]
        assert await page.get_by_text("Acme").count() == 0
        await page.keyboard.press("ArrowDown")
        await page.keyboard.press("Enter")
        await page.wait_for_selector("#selector-popup", state="hidden")
        assert await page.text_content("#selector-label") == "Claude house · claude-b"
        assert await page.evaluate("document.activeElement.id") == "selector-button"
        frame = await page.evaluate(SEND)
        assert frame["endpoint"] == "Claude house" and frame["model"] == "claude-b"
        # remembered for the next new chat
        await ready(page)
        assert await page.text_content("#selector-label") == "Claude house · claude-b"
        assert page.console_errors == []


async def test_many_models_get_a_search_box(chromium, daphne, make_role, make_user, make_endpoint):
    role = await sync_to_async(make_role)("MANY")
    await sync_to_async(make_endpoint)("Router", models=[f"vendor/model-{i}" for i in range(12)] + ["special-one"])
    user = await sync_to_async(make_user)("carol", role=role)
    async with browser_page(chromium, daphne, user) as page:
        await ready(page)
        await page.click("#selector-button")
        await page.fill("#selector-filter", "special")
        assert await page.get_by_role("option").filter(visible=True).all_inner_texts() == ["special-one"]
        await page.keyboard.press("Enter")
        assert await page.text_content("#selector-label") == "Router · special-one"
        await page.click("#selector-button")
        await page.fill("#selector-filter", "nothing like this")
        assert await page.get_by_text("No model matches.").is_visible()


async def test_the_parameters_panel_is_built_from_param_definitions(chromium, daphne, portal, shots):
    async with browser_page(chromium, daphne, portal["alice"]) as page:
        await ready(page)
        await choose(page, "acme-large")
        await page.click("#params-button")
        dialog = page.get_by_role("dialog", name="Parameters")
        await dialog.wait_for()
        temperature = dialog.get_by_label("Temperature")
        assert await temperature.get_attribute("max") == "1" and await temperature.get_attribute("step") == "0.1"
        assert await temperature.input_value() == "0.3"  # the definition's default
        assert await dialog.get_by_label("Safe mode").is_visible()
        assert await dialog.get_by_label("Reasoning effort").is_visible()  # the model reasons
        assert await dialog.get_by_label("Max output tokens").get_attribute("max") == "64000"
        assert await dialog.get_by_label("Presence penalty").is_visible()  # the openAI set
        await temperature.fill("0.6")
        await dialog.get_by_label("Safe mode").check()
        await dialog.get_by_label("Reasoning effort").select_option("high")
        await dialog.get_by_label("Max output tokens").fill("2048")
        await dialog.get_by_label("System prompt").fill("Answer in French.")
        await dialog.evaluate("node => { node.scrollTop = 0; }")
        await page.screenshot(path=str(shots / "params-panel.png"))
        await dialog.get_by_role("button", name="Done").click()
        frame = await page.evaluate(SEND)
        assert frame["params"] == {"temperature": 0.6, "safe_mode": True, "reasoning_effort": "high",
                                   "max_tokens": 2048}
        assert frame["system_prompt"] == "Answer in French." and frame["model"] == "acme-large"

        # another endpoint offers its own set; what it does not take is dropped
        await choose(page, "claude-a")
        await page.click("#params-button")
        assert await dialog.get_by_label("Top K").is_visible()
        assert await dialog.get_by_label("Safe mode").count() == 0
        await dialog.get_by_role("button", name="Reset").click()
        await dialog.get_by_role("button", name="Done").click()
        frame = await page.evaluate(SEND)
        assert frame["params"] == {} and frame["system_prompt"] == "" and frame["endpoint"] == "Claude house"
        assert page.console_errors == []


async def test_an_open_conversation_shows_its_choice_and_sends_only_changes(chromium, daphne, portal):
    from chat.models import Conversation

    convo = await sync_to_async(Conversation.objects.create)(
        user=portal["alice"], endpoint=portal["acme"], endpoint_name="Acme", model="acme-small",
        params={"temperature": 0.2}, system_prompt="Be brief")
    async with browser_page(chromium, daphne, portal["alice"]) as page:
        await ready(page, f"/c/{convo.pk}")
        assert await page.text_content("#selector-label") == "Acme · acme-small"
        assert await page.locator("#temporary-toggle").count() == 0  # a new chat only
        assert await page.evaluate(SEND) == {"type": "send", "text": "hi"}
        await page.click("#params-button")
        assert await page.get_by_label("Temperature").input_value() == "0.2"
        assert await page.get_by_label("System prompt").input_value() == "Be brief"
        await page.get_by_label("Temperature").fill("0.9")
        await page.keyboard.press("Escape")
        assert await page.evaluate(SEND) == {"type": "send", "text": "hi", "params": {"temperature": 0.9}}

        # PANE announces another conversation (e.g. the one the first send created)
        await page.evaluate("""() => document.dispatchEvent(new CustomEvent("atrium:conversation-loaded",
            {detail: {conversation: {id: "x", endpoint: "Claude house", endpoint_id: 2, model: "claude-b",
             spec: null, params: {}, system_prompt: "", temporary: false}}}))""")
        assert await page.text_content("#selector-label") == "Claude house · claude-b"
        assert await page.evaluate(SEND) == {"type": "send", "text": "hi"}


async def test_another_users_conversation_is_not_found(chromium, daphne, portal):
    from chat.models import Conversation

    convo = await sync_to_async(Conversation.objects.create)(
        user=portal["bob"], endpoint=portal["acme"], endpoint_name="Acme", model="acme-large")
    async with browser_page(chromium, daphne, portal["alice"]) as page:
        response = await page.goto(page.base + f"/c/{convo.pk}")
        assert response.status == 404


async def test_the_temporary_toggle_marks_a_new_chats_first_send(chromium, daphne, portal):
    async with browser_page(chromium, daphne, portal["alice"]) as page:
        await ready(page)
        assert "temporary" not in await page.evaluate(SEND)
        await page.get_by_label("Temporary chat").check()
        assert (await page.evaluate(SEND))["temporary"] is True
        regenerate = await page.evaluate("""() => { const frame = {type: "regenerate", message_id: "m"};
            document.dispatchEvent(new CustomEvent("atrium:before-send", {detail: frame})); return frame; }""")
        assert "temporary" not in regenerate

    await sync_to_async(type(portal["role"]).objects.filter(pk=portal["role"].pk).update)(can_temporary_chat=False)
    async with browser_page(chromium, daphne, portal["alice"]) as page:
        await ready(page)
        assert await page.get_by_label("Temporary chat").count() == 0


async def test_presets_are_saved_applied_and_deleted(chromium, daphne, portal):
    from chat.models import Conversation, Preset

    def setup():
        shared = Preset.objects.create(user=portal["bob"], title="Team French", endpoint=portal["claude"],
                                       model="claude-b", params={"temperature": 0.4}, system_prompt="En français.",
                                       shared=True)
        Preset.objects.create(user=portal["bob"], title="Bob's private", endpoint=portal["acme"], model="acme-small")
        convo = Conversation.objects.create(user=portal["alice"], endpoint=portal["acme"], endpoint_name="Acme",
                                            model="acme-small")
        return shared, convo

    shared, convo = await sync_to_async(setup)()
    async with browser_page(chromium, daphne, portal["alice"]) as page:
        await ready(page)
        await choose(page, "acme-large")
        await page.click("#params-button")
        presets = page.locator("#preset-list")
        await presets.get_by_text("Team French").wait_for()
        assert await presets.get_by_text("Bob's private").count() == 0
        assert await presets.get_by_role("button", name="Delete: Team French").count() == 0  # not hers

        await page.get_by_label("Temperature").fill("0.5")
        await page.get_by_label("System prompt").fill("Short answers.")
        await page.get_by_label("Save the current choice as a preset").fill("My short one")
        await page.get_by_role("button", name="Save", exact=True).click()
        await presets.get_by_text("My short one").wait_for()
        mine = await sync_to_async(Preset.objects.get)(title="My short one")
        assert (mine.user_id, mine.model, mine.params, mine.system_prompt) == (
            portal["alice"].pk, "acme-large", {"temperature": 0.5}, "Short answers.")

        await presets.get_by_role("button", name="Apply: Team French").click()
        await page.get_by_text("Applied “Team French”.").wait_for()
        assert await page.get_by_label("System prompt").input_value() == "En français."
        await page.keyboard.press("Escape")
        assert await page.text_content("#selector-label") == "Claude house · claude-b"
        frame = await page.evaluate(SEND)
        assert (frame["endpoint"], frame["model"], frame["params"], frame["system_prompt"]) == (
            "Claude house", "claude-b", {"temperature": 0.4}, "En français.")

        await page.click("#params-button")
        await presets.get_by_role("button", name="Delete: My short one").click()
        await page.get_by_text("Deleted “My short one”.").wait_for()
        await presets.get_by_text("My short one").wait_for(state="detached")
        assert not await sync_to_async(Preset.objects.filter(title="My short one").exists)()

        # in an open conversation, applying a preset moves the conversation to it
        await ready(page, f"/c/{convo.pk}")
        await page.click("#params-button")
        await presets.get_by_role("button", name="Apply: Team French").click()
        await page.get_by_text("Applied “Team French”.").wait_for()
        await sync_to_async(convo.refresh_from_db)()
        assert (convo.endpoint_id, convo.model, convo.system_prompt) == (shared.endpoint_id, "claude-b", "En français.")
        assert page.console_errors == []


async def test_roles_without_presets_see_no_presets(chromium, daphne, portal):
    await sync_to_async(type(portal["role"]).objects.filter(pk=portal["role"].pk).update)(can_use_presets=False)
    async with browser_page(chromium, daphne, portal["alice"]) as page:
        await ready(page)
        await page.click("#params-button")
        await page.get_by_role("dialog", name="Parameters").wait_for()
        assert await page.locator("#presets").count() == 0
        assert page.console_errors == []


async def test_the_header_fits_a_phone(chromium, daphne, portal, shots):
    async with browser_page(chromium, daphne, portal["alice"], width=390, height=800) as page:
        await ready(page)
        await page.click("#selector-button")
        await page.get_by_role("option", name="acme-large").wait_for()
        await page.screenshot(path=str(shots / "selector-phone.png"))
        assert await page.evaluate("document.documentElement.scrollWidth") <= 390
        await page.keyboard.press("Escape")
        await page.click("#params-button")
        await page.get_by_role("dialog", name="Parameters").wait_for()
        assert await page.evaluate("document.documentElement.scrollWidth") <= 390
