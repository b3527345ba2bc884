// The chat page's model selector (templates/chat/selector.html): the list of model specs and
// endpoint models, the parameters panel with the system prompt and presets, the temporary-chat
// toggle. It adds the user's choice to every frame PANE sends (`atrium:before-send`) and shows a
// conversation's choice (`atrium:conversation-loaded`).
import { definitionsFor, renderFields } from "./params.js";
import { api, setUpPresets } from "./presets.js";
import { gettext } from "./i18n.js";

const STORAGE_KEY = "atrium:selector:last";
const root = document.getElementById("selector");

if (root) {
  const data = JSON.parse(document.getElementById("selector-data").textContent);
  const loaded = JSON.parse(document.getElementById("selector-current").textContent);
  const button = document.getElementById("selector-button");
  const popup = document.getElementById("selector-popup");
  const filter = document.getElementById("selector-filter");
  const list = document.getElementById("selector-list");
  const options = [...list.querySelectorAll("[role=option]")];
  const dialog = document.getElementById("params-dialog");
  const systemPrompt = document.getElementById("system-prompt");
  const temporary = document.getElementById("temporary-toggle");
  const presets = root.dataset.presets ? setUpPresets(dialog, { current: presetBody, apply: applyPreset }) : null;

  const state = {
    conversationId: null,
    choice: null, // {spec} or {endpoint, model}
    choiceChanged: false,
    values: {}, // the parameters set (the conversation's, then the user's edits)
    paramsChanged: false,
    systemPrompt: "",
    systemPromptChanged: false,
  };

  // --- what the data offers --------------------------------------------------------------------
  const specNamed = (name) => data.specs.find((s) => s.name === name);
  const endpointNamed = (name) => data.endpoints.find((e) => e.name.toLowerCase() === String(name || "").toLowerCase());
  const modelOf = (endpoint, name) => endpoint && endpoint.models.find((m) => m.name === name);
  const offered = (choice) => choice && (choice.spec ? Boolean(specNamed(choice.spec))
    : Boolean(modelOf(endpointNamed(choice.endpoint), choice.model)));

  function defaultChoice() {
    const spec = data.specs.find((s) => s.is_default) || (data.free_choice ? null : data.specs[0]);
    if (spec) return { spec: spec.name };
    const endpoint = data.endpoints.find((e) => e.models.length);
    return endpoint ? { endpoint: endpoint.name, model: endpoint.models[0].name } : null;
  }

  function remembered() {
    try {
      const saved = JSON.parse(localStorage.getItem(STORAGE_KEY) || "null");
      return offered(saved) ? saved : null;
    } catch {
      return null;
    }
  }

  // --- the button and the list -------------------------------------------------------------------
  function optionFor(choice) {
    if (!choice) return null;
    return options.find((o) => (choice.spec ? o.dataset.spec === choice.spec
      : o.dataset.endpoint === choice.endpoint && o.dataset.model === choice.model)) || null;
  }

  function show() {
    const option = optionFor(state.choice);
    for (const o of options) o.setAttribute("aria-selected", String(o === option));
    const label = document.getElementById("selector-label");
    const icon = document.getElementById("selector-icon");
    if (option) {
      const endpoint = option.dataset.endpoint;
      label.textContent = endpoint ? `${endpoint} · ${option.dataset.label}` : option.dataset.label;
      icon.src = option.dataset.icon;
    } else if (state.choice) {
      label.textContent = state.choice.spec || `${state.choice.endpoint} · ${state.choice.model}`;
    } else {
      label.textContent = gettext("Choose a model");
    }
    root.dataset.choice = state.choice ? JSON.stringify(state.choice) : "";
  }

  const visible = () => options.filter((o) => !o.hidden);
  let active = null;

  function activate(option) {
    for (const o of options) o.classList.toggle("active", o === option);
    active = option;
    const owner = filter.hidden ? list : filter;
    if (option) {
      owner.setAttribute("aria-activedescendant", option.id);
      option.scrollIntoView({ block: "nearest" });
    } else {
      owner.removeAttribute("aria-activedescendant");
    }
  }

  function open() {
    popup.hidden = false;
    button.setAttribute("aria-expanded", "true");
    filter.value = "";
    applyFilter();
    activate(optionFor(state.choice) || visible()[0] || null);
    (filter.hidden ? list : filter).focus();
  }

  function close(focusButton = true) {
    if (popup.hidden) return;
    popup.hidden = true;
    button.setAttribute("aria-expanded", "false");
    if (focusButton) button.focus();
  }

  function applyFilter() {
    const words = filter.value.toLowerCase().split(/\s+/).filter(Boolean);
    for (const o of options) {
      const text = `${o.dataset.label} ${o.dataset.endpoint || ""} ${o.dataset.model || ""} ${o.textContent}`.toLowerCase();
      o.hidden = !words.every((w) => text.includes(w));
    }
    for (const section of list.querySelectorAll(".selector-section")) {
      section.hidden = !section.querySelector("[role=option]:not([hidden])");
    }
    document.getElementById("selector-no-match").hidden = visible().length > 0 || options.length === 0;
    if (active && active.hidden) activate(visible()[0] || null);
  }

  function pick(option) {
    const choice = option.dataset.spec ? { spec: option.dataset.spec }
      : { endpoint: option.dataset.endpoint, model: option.dataset.model };
    choose(choice);
    close();
  }

  function choose(choice) {
    const before = state.choice && (state.choice.spec ? null : state.choice.endpoint);
    state.choice = choice;
    state.choiceChanged = true;
    if (choice.spec || before !== choice.endpoint) {
      // Another endpoint takes other parameters: keep only what it offers.
      const keys = new Set(definitions().map((d) => d.key));
      for (const key of Object.keys(state.values)) if (!keys.has(key)) delete state.values[key];
    }
    if (!state.conversationId) localStorage.setItem(STORAGE_KEY, JSON.stringify(choice));
    show();
    drawPanel();
  }

  button.addEventListener("click", () => (popup.hidden ? open() : close()));
  filter.addEventListener("input", applyFilter);
  for (const o of options) {
    o.addEventListener("click", () => pick(o));
    o.addEventListener("mousemove", () => active !== o && activate(o));
  }
  popup.addEventListener("keydown", (event) => {
    const shown = visible();
    const at = shown.indexOf(active);
    const moves = { ArrowDown: at + 1, ArrowUp: at - 1, Home: 0, End: shown.length - 1 };
    if (event.key in moves && shown.length) {
      event.preventDefault();
      activate(shown[Math.max(0, Math.min(shown.length - 1, moves[event.key]))]);
    } else if (event.key === "Enter" && active) {
      event.preventDefault();
      pick(active);
    } else if (event.key === "Escape") {
      event.preventDefault();
      close();
    } else if (event.key === "Tab") {
      close(false);
    }
  });
  document.addEventListener("click", (event) => {
    if (!popup.hidden && !root.contains(event.target)) close(false);
  });

  // --- the parameters panel ------------------------------------------------------------------------
  function target() {
    const choice = state.choice;
    if (!choice) return { endpoint: null, model: null, spec: null };
    const spec = choice.spec ? specNamed(choice.spec) : null;
    const endpoint = endpointNamed(spec ? spec.endpoint : choice.endpoint) || null;
    const model = modelOf(endpoint, spec ? spec.model : choice.model) || null;
    return { endpoint, model, spec };
  }

  function definitions() {
    const { endpoint, model, spec } = target();
    // A spec's endpoint may be one the role cannot pick freely (not in the data): its kind decides.
    const source = endpoint || (spec ? { params_endpoint: spec.endpoint_kind === "anthropic" ? "anthropic" : "custom" } : null);
    return definitionsFor(source, model);
  }

  function drawPanel() {
    const { spec } = target();
    const locked = Boolean(spec && data.enforce);
    const note = document.getElementById("params-note");
    note.hidden = !spec;
    note.textContent = locked ? gettext("This model spec sets the parameters; they cannot be changed.")
      : spec ? gettext("The model spec's parameters apply unless you change them here.") : "";
    const shown = spec ? { ...spec.params, ...state.values } : state.values;
    renderFields(document.getElementById("params-fields"), definitions(), shown, {
      disabled: locked,
      onChange(key, value) {
        if (value === undefined) delete state.values[key]; else state.values[key] = value;
        state.paramsChanged = true;
      },
    });
    systemPrompt.disabled = Boolean(spec);
    document.getElementById("system-prompt-note").hidden = !spec;
    systemPrompt.value = spec ? "" : state.systemPrompt;
  }

  systemPrompt.addEventListener("input", () => {
    state.systemPrompt = systemPrompt.value;
    state.systemPromptChanged = true;
  });
  document.getElementById("params-reset").addEventListener("click", () => {
    state.values = {};
    state.paramsChanged = true;
    if (!target().spec) {
      state.systemPrompt = "";
      state.systemPromptChanged = true;
    }
    drawPanel();
  });
  document.getElementById("params-button").addEventListener("click", () => {
    drawPanel();
    dialog.showModal();
    if (presets) presets.load();
  });

  // --- presets ---------------------------------------------------------------------------------------
  function presetBody() {
    const { endpoint, model, spec } = target();
    if (!state.choice) return null;
    return {
      endpoint: spec ? spec.endpoint : endpoint ? endpoint.name : state.choice.endpoint,
      model: spec ? spec.model : model ? model.name : state.choice.model,
      params: spec ? { ...spec.params, ...state.values } : { ...state.values },
      system_prompt: spec ? "" : state.systemPrompt,
    };
  }

  async function applyPreset(preset) {
    if (state.conversationId) {
      await api("PUT", `/api/library/conversations/${state.conversationId}/preset`, { preset_id: preset.id });
    }
    state.choice = { endpoint: preset.endpoint, model: preset.model };
    state.values = { ...preset.params };
    state.systemPrompt = preset.system_prompt || "";
    // An open conversation already holds the preset; a new chat sends it with its first message.
    const pending = !state.conversationId;
    state.choiceChanged = state.paramsChanged = state.systemPromptChanged = pending;
    if (pending) localStorage.setItem(STORAGE_KEY, JSON.stringify(state.choice));
    show();
    drawPanel();
  }

  // --- the page's events -------------------------------------------------------------------------------
  function load(conversation) {
    state.conversationId = conversation ? conversation.id : null;
    state.paramsChanged = state.systemPromptChanged = state.choiceChanged = false;
    if (conversation) {
      state.choice = conversation.spec ? { spec: conversation.spec }
        : conversation.endpoint ? { endpoint: conversation.endpoint, model: conversation.model } : null;
      state.values = { ...(conversation.spec ? {} : conversation.params || {}) };
      state.systemPrompt = conversation.system_prompt || "";
    } else {
      const fallback = defaultChoice();
      state.choice = (data.prioritize && fallback && fallback.spec ? fallback : remembered()) || fallback;
      state.values = {};
      state.systemPrompt = "";
    }
    if (temporary) {
      temporary.closest("label").hidden = Boolean(conversation);
      if (conversation) temporary.checked = false;
    }
    show();
    drawPanel();
  }

  document.addEventListener("atrium:conversation-loaded", (event) => load(event.detail && event.detail.conversation));

  document.addEventListener("atrium:before-send", (event) => {
    const frame = event.detail;
    if (!frame || typeof frame !== "object") return;
    const fresh = !state.conversationId;
    if (state.choice && (fresh || state.choiceChanged)) {
      if (state.choice.spec) frame.spec = state.choice.spec;
      else Object.assign(frame, { endpoint: state.choice.endpoint, model: state.choice.model });
    }
    if (state.paramsChanged && !(target().spec && data.enforce)) frame.params = { ...state.values };
    if (state.systemPromptChanged && !target().spec) frame.system_prompt = state.systemPrompt;
    if (fresh && temporary && temporary.checked && frame.type === "send") frame.temporary = true;
  });

  load(loaded);
  root.dataset.ready = "1";
}
