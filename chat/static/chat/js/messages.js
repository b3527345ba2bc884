// One message of the conversation pane as DOM: who wrote it (model label and icon), its text
// (answers through the renderer, user messages as plain text), reasoning collapsed, its error,
// sibling navigation ‹ 2/3 ›, actions, tokens and cost. Built with DOM calls only (no HTML strings):
// nothing a model writes is parsed as markup here.

import { renderMarkdown, renderPlain } from "./render.js";
import { gettext, interpolate } from "./i18n.js";

const numberFormat = new Intl.NumberFormat(document.documentElement.lang || undefined);

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function button(action, label, extraClass) {
  const node = el("button", `msg-action${extraClass ? ` ${extraClass}` : ""}`, label);
  node.type = "button";
  node.dataset.action = action;
  return node;
}

export function reasoningOf(node) {
  return (node.content || []).filter((part) => part.type === "reasoning").map((part) => part.text || "").join("");
}

// An icon URL the page may show: a path or URL on this site (the CSP allows images from 'self' only).
function sameOriginIcon(url) {
  if (!url) return null;
  try {
    const parsed = new URL(url, location.href);
    return parsed.origin === location.origin && /^https?:$/.test(parsed.protocol) ? parsed.href : null;
  } catch {
    return null;
  }
}

// The answering model's label and icon: modelDisplayLabel / the sender, the endpoint's iconURL, else
// a monogram marked with the endpoint's kind and name (known endpoints get their colour in chat.css).
export function who(node, endpoints) {
  if (node.role === "user") return { label: gettext("You"), icon: null, monogram: "", kind: "user", name: "" };
  const endpoint = endpoints[node.endpoint] || null;
  const label = node.sender || (endpoint && endpoint.label) || node.model || gettext("Assistant");
  return {
    label,
    icon: endpoint ? sameOriginIcon(endpoint.icon_url) : null,
    monogram: (label.trim()[0] || "A").toUpperCase(),
    kind: endpoint ? endpoint.kind : "",
    name: (node.endpoint || "").toLowerCase().replace(/[^a-z0-9]+/g, "-"),
  };
}

function avatar(node, endpoints) {
  const shown = who(node, endpoints);
  const box = el("div", "msg-avatar");
  box.setAttribute("aria-hidden", "true");
  if (shown.icon) {
    const img = el("img");
    img.src = shown.icon;
    img.alt = "";
    box.append(img);
  } else {
    box.textContent = node.role === "user" ? (document.getElementById("app-main").dataset.userInitial || "") : shown.monogram;
    if (shown.kind) box.dataset.kind = shown.kind;
    if (shown.name) box.dataset.endpoint = shown.name;
  }
  return { box, shown };
}

export function messageElement(node, endpoints) {
  const item = el("li", `msg msg-${node.role === "user" ? "user" : "assistant"}`);
  item.id = `msg-${node.id}`;
  item.dataset.id = node.id;
  const { box, shown } = avatar(node, endpoints);
  const body = el("div", "msg-body");
  const head = el("div", "msg-head");
  head.append(el("span", "msg-sender", shown.label));
  if (node.role !== "user" && node.model && node.model !== shown.label) head.append(el("span", "msg-model", node.model));
  const reasoning = el("details", "msg-reasoning");
  reasoning.append(el("summary", "", gettext("Reasoning")), el("div", "msg-reasoning-text"));
  reasoning.hidden = true;
  const content = el("div", "msg-content");
  const error = el("p", "msg-error");
  error.hidden = true;
  const foot = el("div", "msg-foot");
  const siblings = el("div", "msg-siblings");
  siblings.hidden = true;
  const prev = button("prev", "‹", "msg-sibling");
  prev.setAttribute("aria-label", gettext("Previous version"));
  const next = button("next", "›", "msg-sibling");
  next.setAttribute("aria-label", gettext("Next version"));
  siblings.append(prev, el("span", "msg-sibling-count"), next);
  const actions = el("div", "msg-actions");
  actions.append(button("copy", gettext("Copy")));
  if (node.role === "user") {
    actions.append(button("edit", gettext("Edit")));
  } else {
    actions.append(button("regenerate", gettext("Regenerate")), button("continue", gettext("Continue")));
  }
  actions.append(button("fork", gettext("Fork")));
  foot.append(siblings, actions, el("span", "msg-usage"));
  body.append(head, reasoning, content, error, foot);
  item.append(box, body);
  updateMessage(item, node);
  return item;
}

function usageText(node) {
  const tokens = node.tokens || {};
  const parts = [];
  if (tokens.prompt != null || tokens.completion != null) {
    parts.push(interpolate(gettext("%(prompt)s in · %(completion)s out"), {
      prompt: numberFormat.format(tokens.prompt || 0), completion: numberFormat.format(tokens.completion || 0),
    }, true));
  }
  const usage = node.usage;
  if (usage && usage.cost && Number(usage.credits) > 0) parts.push((usage.estimated ? "≈ " : "") + usage.cost);
  return parts.join(" · ");
}

// Draw `node`'s text, reasoning, error, usage and which actions apply.
export function updateMessage(item, node, { streaming = false, busy = false } = {}) {
  const text = node.text || "";
  if (item.renderedText !== text) { // (drawn again only when it changed)
    const content = item.querySelector(".msg-content");
    if (node.role === "user") renderPlain(content, text);
    else renderMarkdown(content, text);
    item.renderedText = text;
  }
  updateReasoning(item, node, streaming);
  const error = item.querySelector(".msg-error");
  error.textContent = node.error || "";
  error.hidden = !node.error || streaming;
  item.querySelector(".msg-usage").textContent = node.role === "user" ? "" : usageText(node);
  item.classList.toggle("is-streaming", streaming);
  const cont = item.querySelector('[data-action="continue"]');
  if (cont) cont.hidden = !(node.unfinished && node.finish_reason !== "error" && node.text);
  setBusy(item, busy);
}

// While an answer is being written, nothing else can be asked.
export function setBusy(item, busy) {
  for (const action of item.querySelectorAll('[data-action="edit"], [data-action="regenerate"], [data-action="continue"]')) {
    action.disabled = busy;
  }
}

export function updateReasoning(item, node, streaming) {
  const reasoning = reasoningOf(node);
  const details = item.querySelector(".msg-reasoning");
  details.hidden = !reasoning;
  details.querySelector("summary").textContent = streaming && !node.text ? gettext("Thinking…") : gettext("Reasoning");
  if (reasoning && item.renderedReasoning !== reasoning) {
    renderPlain(details.querySelector(".msg-reasoning-text"), reasoning);
    item.renderedReasoning = reasoning;
  }
}

export function updateSiblings(item, index, count) {
  const box = item.querySelector(".msg-siblings");
  box.hidden = count < 2;
  if (count < 2) return;
  box.querySelector(".msg-sibling-count").textContent = interpolate(
    gettext("%(index)s / %(count)s"), { index: numberFormat.format(index + 1), count: numberFormat.format(count) }, true);
  box.querySelector('[data-action="prev"]').disabled = index === 0;
  box.querySelector('[data-action="next"]').disabled = index === count - 1;
}
