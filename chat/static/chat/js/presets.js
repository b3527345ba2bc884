// Presets in the parameters panel: list (own and shared), apply, save the current choice, delete
// own — all through /api/library/presets (session + CSRF).

import { gettext, interpolate } from "./i18n.js";
function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

export async function api(method, url, body) {
  const options = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (method !== "GET") options.headers["X-CSRFToken"] = csrfToken();
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(url, options);
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) {
    throw new Error((data && data.error && data.error.message) || interpolateStatus(response.status));
  }
  return data;
}

function interpolateStatus(status) {
  const text = gettext("The server answered %s.");
  return interpolate(text, [status]);
}

/** Wires the presets section. `selector` gives `current()` ({endpoint, model, params, system_prompt})
 *  and `apply(preset)` (returns a promise). */
export function setUpPresets(root, selector) {
  const list = root.querySelector("#preset-list");
  const empty = root.querySelector("#preset-empty");
  const name = root.querySelector("#preset-name");
  const status = root.querySelector("#preset-status");
  const say = (text, error = false) => { status.textContent = text; status.classList.toggle("error", error); };

  async function load() {
    let presets;
    try {
      presets = await api("GET", "/api/library/presets");
    } catch (error) {
      say(error.message, true);
      return;
    }
    list.replaceChildren(...presets.map(item));
    empty.hidden = presets.length > 0;
  }

  function item(preset) {
    const li = document.createElement("li");
    li.className = "preset";
    li.dataset.presetId = String(preset.id);
    const title = document.createElement("span");
    title.className = "preset-title";
    title.textContent = preset.title;
    const detail = document.createElement("small");
    detail.textContent = `${preset.endpoint} · ${preset.model}${preset.mine ? "" : ` · ${gettext("shared")}`}`;
    title.append(document.createElement("br"), detail);
    const apply = button(gettext("Apply"), async () => {
      try {
        await selector.apply(preset);
        say(interpolate(gettext("Applied “%s”."), [preset.title]));
      } catch (error) {
        say(error.message, true);
      }
    });
    apply.setAttribute("aria-label", `${gettext("Apply")}: ${preset.title}`);
    li.append(title, apply);
    if (preset.mine) {
      const remove = button(gettext("Delete"), async () => {
        try {
          await api("DELETE", `/api/library/presets/${preset.id}`);
          await load();
          say(interpolate(gettext("Deleted “%s”."), [preset.title]));
        } catch (error) {
          say(error.message, true);
        }
      });
      remove.setAttribute("aria-label", `${gettext("Delete")}: ${preset.title}`);
      remove.classList.add("danger");
      li.append(remove);
    }
    return li;
  }

  function button(text, onClick) {
    const node = document.createElement("button");
    node.type = "button";
    node.className = "secondary";
    node.textContent = text;
    node.addEventListener("click", onClick);
    return node;
  }

  async function save() {
    const title = name.value.trim();
    if (!title) {
      say(gettext("Give the preset a name."), true);
      name.focus();
      return;
    }
    const current = selector.current();
    if (!current) {
      say(gettext("Choose a model first."), true);
      return;
    }
    try {
      await api("POST", "/api/library/presets", { title, ...current });
      name.value = "";
      await load();
      say(interpolate(gettext("Saved “%s”."), [title]));
    } catch (error) {
      say(error.message, true);
    }
  }

  root.querySelector("#preset-save").addEventListener("click", save);
  name.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      save();
    }
  });
  return { load };
}
