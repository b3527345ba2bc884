// The parameters panel's fields: the endpoint's parameter set (customParams.defaultParamsEndpoint)
// and the model's capabilities, with the endpoint's paramDefinitions laid over them (LibreChat's
// SettingDefinition: key, type, component, default, range {min, max, step}, options, label, …).

import { gettext, interpolate } from "./i18n.js";
const temperature = (max) => ({ key: "temperature", type: "number", label: gettext("Temperature"), default: 1,
  range: { min: 0, max, step: 0.01 }, description: gettext("Higher is more random, lower more focused.") });
const topP = { key: "top_p", type: "number", label: gettext("Top P"), default: 1, range: { min: 0, max: 1, step: 0.01 } };
const topK = { key: "top_k", type: "number", label: gettext("Top K"), range: { min: 1, max: 40, step: 1 } };
const penalty = (key, label) => ({ key, type: "number", label, default: 0, range: { min: -2, max: 2, step: 0.01 } });

const BASE = {
  custom: () => [temperature(2), topP, penalty("frequency_penalty", gettext("Frequency penalty")),
    penalty("presence_penalty", gettext("Presence penalty"))],
  anthropic: () => [temperature(1), topP, topK],
  google: () => [temperature(2), topP, topK],
};
const INTEGER_KEYS = new Set(["max_tokens", "top_k", "seed"]);
export const REASONING_EFFORTS = ["minimal", "low", "medium", "high"];

/** The field definitions for an endpoint (from the selector data) and one of its models. */
export function definitionsFor(endpoint, model) {
  const base = (BASE[endpoint && endpoint.params_endpoint] || BASE.custom)();
  const context = model && model.context_tokens;
  base.push({ key: "max_tokens", type: "number", label: gettext("Max output tokens"),
    range: { min: 1, max: context || 1000000, step: 1 }, component: "input" });
  if (model && model.capabilities && model.capabilities.reasoning) {
    base.push({ key: "reasoning_effort", type: "enum", label: gettext("Reasoning effort"), options: REASONING_EFFORTS });
  }
  const byKey = new Map(base.map((d) => [d.key, d]));
  for (const own of (endpoint && endpoint.param_definitions) || []) {
    const known = byKey.get(own.key);
    if (known) {
      Object.assign(known, own, { range: { ...(known.range || {}), ...(own.range || {}) } });
    } else {
      const fresh = { ...own };
      byKey.set(own.key, fresh);
      base.push(fresh);
    }
  }
  return base.filter((d) => d.type !== "object");
}

function kindOf(def) {
  if (def.type === "boolean" || def.component === "switch" || def.component === "checkbox") return "boolean";
  if (def.type === "enum" || (def.options && def.options.length) || def.component === "dropdown") return "enum";
  if (def.type === "number") return def.range && def.range.max !== undefined && def.component !== "input" ? "slider" : "number";
  if (def.type === "array" || def.component === "tags") return "list";
  return def.component === "textarea" ? "textarea" : "text";
}

function coerce(def, raw) {
  const kind = kindOf(def);
  if (kind === "boolean") return Boolean(raw);
  if (kind === "slider" || kind === "number") {
    if (raw === "" || raw === null) return undefined;
    const value = Number(raw);
    if (!Number.isFinite(value)) return undefined;
    const step = def.range && def.range.step;
    return INTEGER_KEYS.has(def.key) || Number.isInteger(step) ? Math.round(value) : value;
  }
  if (kind === "list") {
    const items = String(raw).split(",").map((s) => s.trim()).filter(Boolean);
    return items.length ? items : undefined;
  }
  if (kind === "enum") {
    if (raw === "") return undefined;
    const match = (def.options || []).find((o) => String(o) === raw);
    return match === undefined ? raw : match;
  }
  return raw === "" ? undefined : raw;
}

function element(tag, attrs = {}, text = "") {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) node.setAttribute(k, v);
  if (text) node.textContent = text;
  return node;
}

/** Draws one field per definition into `container`; `values` are the set ones (others show their
 *  default); `onChange(key, value|undefined)` reports an edit. */
export function renderFields(container, defs, values, { disabled, onChange }) {
  container.replaceChildren();
  defs.forEach((def, index) => {
    const id = `param-${index}`;
    const kind = kindOf(def);
    const row = element("div", { class: `params-field params-${kind}`, "data-key": def.key });
    const head = element("div", { class: "params-field-head" });
    head.append(element("label", { for: id }, def.label || def.key));
    const shown = element("output", { for: id, class: "params-value" });
    head.append(shown);
    row.append(head);
    const set = values[def.key];
    const show = () => {
      const value = values[def.key];
      shown.textContent = value === undefined ? gettext("default") : value === true ? gettext("on") : value === false ? gettext("off")
        : Array.isArray(value) ? value.join(", ") : String(value);
    };
    let control;
    if (kind === "boolean") {
      control = element("input", { type: "checkbox", id });
      control.checked = set !== undefined ? Boolean(set) : Boolean(def.default);
    } else if (kind === "enum") {
      control = element("select", { id });
      control.append(element("option", { value: "" }, def.default !== undefined
        ? interpolate(gettext("Default (%s)"), [String(def.default)]) : gettext("Default")));
      for (const option of def.options || REASONING_EFFORTS) control.append(element("option", { value: String(option) }, String(option)));
      control.value = set !== undefined ? String(set) : "";
    } else if (kind === "slider") {
      const { min, max, step } = def.range;
      control = element("input", { type: "range", id, min, max, step: step || "any" });
      control.value = String(set !== undefined ? set : (def.default !== undefined ? def.default : min));
    } else if (kind === "number") {
      const range = def.range || {};
      control = element("input", { type: "number", id, min: range.min, max: range.max, step: range.step || "any",
        placeholder: def.placeholder || (def.default !== undefined ? String(def.default) : gettext("default")) });
      control.value = set !== undefined ? String(set) : "";
    } else if (kind === "textarea") {
      control = element("textarea", { id, rows: "2", placeholder: def.placeholder || "" });
      control.value = set !== undefined ? String(set) : "";
    } else {
      control = element("input", { type: "text", id, placeholder: def.placeholder || (kind === "list" ? gettext("comma, separated") : "") });
      control.value = set !== undefined ? (Array.isArray(set) ? set.join(", ") : String(set)) : "";
    }
    control.disabled = Boolean(disabled);
    control.classList.add("params-control");
    control.addEventListener(kind === "boolean" || kind === "enum" ? "change" : "input", () => {
      const raw = kind === "boolean" ? control.checked : control.value;
      const value = coerce(def, raw);
      if (value === undefined) delete values[def.key]; else values[def.key] = value;
      show();
      onChange(def.key, value);
    });
    row.append(control);
    if (def.description) row.append(element("small", { class: "params-help" }, def.description));
    show();
    container.append(row);
  });
}
