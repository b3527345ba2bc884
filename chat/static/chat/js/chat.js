// The conversation pane of the chat page: the current branch of the message tree, the composer,
// the actions on messages and the live answer over the websocket. The other parts of the page talk
// to it through CustomEvents on `document` (the page contract): it dispatches
// atrium:before-send, atrium:conversation, atrium:conversation-loaded and atrium:turn-done.

import { messageElement, setBusy, updateMessage, updateReasoning, updateSiblings } from "./messages.js";
import { Notices } from "./notices.js";
import { ChatSocket } from "./socket.js";
import { Tree } from "./tree.js";
import { gettext } from "./i18n.js";

const WINDOW = 60; // messages drawn at a time; older ones as the reader scrolls up
const $ = (id) => document.getElementById(id);

const data = JSON.parse($("chat-data").textContent);
const list = $("chat-messages");
const scroller = $("chat-scroll");
const more = $("chat-more");
const input = $("composer-input");
const sendButton = $("send-button");
const stopButton = $("stop-button");
const main = $("app-main");
const notices = new Notices({ notice: $("chat-notice"), connection: $("chat-connection"), settingsUrl: main.dataset.settingsUrl });

const state = {
  conversationId: data.conversation ? data.conversation.id : null,
  temporary: Boolean(data.conversation && data.conversation.temporary),
  tree: new Tree(data.messages),
  endpoints: data.endpoints || {},
  shown: [], // ids of the branch shown, root first
  start: 0, // index in `shown` of the first message drawn
  elements: new Map(), // id -> its <li>
  running: null, // {messageId, generationId}: the answer being written in this conversation
  awaiting: null, // request_id of a send/edit/regenerate/continue not yet `created`
  pending: new Map(), // request_id -> {text, editing}: what to give back if it is refused
  seen: new Map(), // generation id -> the highest seq handled
  prefix: new Map(), // message id -> the text a continued answer had before
  atBottom: true,
  wasBusy: false,
  requests: 0,
};

function emit(name, detail) {
  document.dispatchEvent(new CustomEvent(name, { detail }));
}

function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

async function api(path, options = {}) {
  const headers = { Accept: "application/json", ...(options.headers || {}) };
  if (options.method && options.method !== "GET") headers["X-CSRFToken"] = csrfToken();
  const response = await fetch(path, { credentials: "same-origin", ...options, headers });
  const body = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) {
    const error = (body && body.error) || { code: "server", message: gettext("The server could not do that.") };
    throw Object.assign(new Error(error.message), { code: error.code });
  }
  return body;
}

// --- drawing the branch ------------------------------------------------------------------------

function busy() {
  return state.running !== null || state.awaiting !== null;
}

function elementFor(id) {
  let item = state.elements.get(id);
  if (!item) {
    item = messageElement(state.tree.get(id), state.endpoints);
    state.elements.set(id, item);
  }
  return item;
}

function refreshSiblings(id) {
  const siblings = state.tree.siblings(id);
  updateSiblings(elementFor(id), siblings.indexOf(id), siblings.length);
}

function refresh(id) {
  const node = state.tree.get(id);
  const streaming = state.running !== null && state.running.messageId === id;
  updateMessage(elementFor(id), node, { streaming, busy: busy() });
}

function drawBranch({ focus = null } = {}) {
  state.shown = state.tree.branch();
  let start = Math.max(0, state.shown.length - WINDOW);
  const at = focus ? state.shown.indexOf(focus) : -1;
  if (at >= 0) start = Math.min(start, Math.max(0, at - 5));
  state.start = start;
  const items = state.shown.slice(start).map((id) => {
    refreshSiblings(id);
    refresh(id);
    return elementFor(id);
  });
  list.replaceChildren(...items);
  more.hidden = start === 0;
  $("chat-empty").hidden = state.shown.length > 0 || state.conversationId !== null;
}

function drawOlder() {
  if (state.start === 0) return;
  const from = Math.max(0, state.start - WINDOW);
  const before = scroller.scrollHeight;
  const items = state.shown.slice(from, state.start).map((id) => {
    refreshSiblings(id);
    refresh(id);
    return elementFor(id);
  });
  list.prepend(...items);
  state.start = from;
  more.hidden = from === 0;
  scroller.scrollTop += scroller.scrollHeight - before; // the reader's place stays put
}

new IntersectionObserver((entries) => {
  if (entries.some((entry) => entry.isIntersecting)) drawOlder();
}, { root: scroller, rootMargin: "400px 0px 0px 0px" }).observe(more);

function stick() {
  if (state.atBottom) scroller.scrollTop = scroller.scrollHeight;
}

scroller.addEventListener("scroll", () => {
  state.atBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 48;
}, { passive: true });

function showBranchOf(id) {
  state.tree.show(id);
  drawBranch();
}

// --- composer ----------------------------------------------------------------------------------

function updateComposer() {
  const running = state.running !== null;
  sendButton.hidden = running;
  stopButton.hidden = !running;
  sendButton.disabled = !input.value.trim() || busy() || !socket.open;
  if (state.wasBusy !== busy()) {
    state.wasBusy = busy();
    for (const id of state.shown.slice(state.start)) setBusy(elementFor(id), state.wasBusy);
  }
}

function nextRequestId() {
  state.requests += 1;
  return `page-${Date.now().toString(36)}-${state.requests}`;
}

// Send a turn frame: send / edit / regenerate / continue. False when it could not go out.
function sendTurn(frame, keep = null) {
  frame.request_id = nextRequestId();
  emit("atrium:before-send", frame);
  if (!socket.send(frame)) {
    notices.say(gettext("Not connected: nothing was sent. Wait for the connection to come back, then try again."));
    return false;
  }
  notices.clear();
  state.awaiting = frame.request_id;
  if (keep) state.pending.set(frame.request_id, keep);
  state.atBottom = true;
  updateComposer();
  return true;
}

function send() {
  const text = input.value;
  if (!text.trim() || busy()) return;
  const frame = { type: "send", text };
  if (state.conversationId) {
    frame.conversation_id = state.conversationId;
    const leaf = state.tree.leaf();
    if (leaf) frame.parent_id = leaf;
  }
  if (sendTurn(frame, { text })) {
    input.value = "";
    updateComposer();
  }
  input.focus();
}

function stop() {
  if (!state.running || !state.conversationId) return;
  socket.send({ type: "stop", conversation_id: state.conversationId });
}

$("composer").addEventListener("submit", (event) => {
  event.preventDefault();
  send();
});
input.addEventListener("input", () => {
  sendButton.disabled = !input.value.trim() || busy() || !socket.open;
});
input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    send();
  }
});
stopButton.addEventListener("click", () => {
  stop();
  input.focus();
});
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && state.running && !event.defaultPrevented && !event.target.closest(".msg-editor")) {
    stop();
  }
});

// --- actions on messages -----------------------------------------------------------------------

async function copy(id, control) {
  const node = state.tree.get(id);
  try {
    await navigator.clipboard.writeText(node.text || "");
    control.textContent = gettext("Copied");
  } catch {
    control.textContent = gettext("Copy failed");
  }
  setTimeout(() => { control.textContent = gettext("Copy"); }, 1500);
}

function sibling(id, step) {
  const siblings = state.tree.siblings(id);
  const target = siblings[siblings.indexOf(id) + step];
  if (!target) return;
  showBranchOf(target);
  const control = elementFor(target).querySelector(step < 0 ? '[data-action="prev"]' : '[data-action="next"]');
  (control && !control.disabled ? control : input).focus();
}

function edit(id, text = null) {
  const item = elementFor(id);
  if (item.querySelector(".msg-editor") || busy()) return;
  const node = state.tree.get(id);
  const form = document.createElement("form");
  form.className = "msg-editor";
  const label = document.createElement("label");
  label.className = "visually-hidden";
  label.textContent = gettext("Edit your message");
  const area = document.createElement("textarea");
  area.value = text ?? (node.text || "");
  area.id = `edit-${id}`;
  label.htmlFor = area.id;
  const save = document.createElement("button");
  save.type = "submit";
  save.textContent = gettext("Save and send");
  const cancel = document.createElement("button");
  cancel.type = "button";
  cancel.className = "secondary";
  cancel.textContent = gettext("Cancel");
  const buttons = document.createElement("div");
  buttons.className = "msg-editor-buttons";
  buttons.append(cancel, save);
  form.append(label, area, buttons);
  const content = item.querySelector(".msg-content");
  content.hidden = true;
  content.after(form);
  const close = () => {
    form.remove();
    content.hidden = false;
  };
  cancel.addEventListener("click", () => {
    close();
    item.querySelector('[data-action="edit"]').focus();
  });
  area.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.preventDefault();
      close();
      item.querySelector('[data-action="edit"]').focus();
    } else if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!area.value.trim() || busy()) return;
    if (sendTurn({ type: "edit", message_id: id, text: area.value }, { text: area.value, editing: id })) {
      close();
      input.focus();
    }
  });
  area.focus();
}

async function fork(id) {
  try {
    const conversation = await api(`/api/messages/${id}/fork`, { method: "POST" });
    location.assign(`/c/${conversation.id}`);
  } catch (error) {
    notices.error({ code: error.code, message: error.message });
  }
}

list.addEventListener("click", (event) => {
  const control = event.target.closest("button[data-action]");
  if (!control || control.disabled) return;
  const id = control.closest(".msg").dataset.id;
  const action = control.dataset.action;
  if (action === "copy") copy(id, control);
  else if (action === "prev") sibling(id, -1);
  else if (action === "next") sibling(id, 1);
  else if (action === "edit") edit(id);
  else if (action === "fork") fork(id);
  else if (action === "regenerate" && !busy()) {
    sendTurn({ type: "regenerate", message_id: id });
    input.focus();
  } else if (action === "continue" && !busy()) {
    sendTurn({ type: "continue", message_id: id });
    input.focus();
  }
});

// --- frames from the server --------------------------------------------------------------------

function conversationLoaded(conversation) {
  emit("atrium:conversation-loaded", { conversation });
}

function fresh(frame) {
  // Frames of an answer are numbered per generation: a repeat (after a reconnect) is dropped.
  if (!frame.generation_id || typeof frame.seq !== "number") return true;
  const seen = state.seen.get(frame.generation_id) || 0;
  if (frame.seq <= seen) return false;
  state.seen.set(frame.generation_id, frame.seq);
  return true;
}

function onCreated(frame) {
  const mine = frame.request_id && frame.request_id === state.awaiting;
  if (mine) state.awaiting = null;
  state.pending.delete(frame.request_id);
  if (frame.new_conversation && state.conversationId === null && mine) {
    state.conversationId = frame.conversation_id;
    state.temporary = Boolean(frame.temporary);
    history.replaceState(null, "", `/c/${frame.conversation_id}`);
    document.title = `${frame.title} · Atrium`;
    emit("atrium:conversation", { id: frame.conversation_id, title: frame.title, new: true, temporary: state.temporary });
    conversationLoaded({
      id: frame.conversation_id, endpoint: frame.endpoint, endpoint_id: frame.endpoint_id, model: frame.model,
      spec: frame.spec, params: null, system_prompt: null, temporary: null,
    });
  }
  if (frame.conversation_id !== state.conversationId) return;
  const known = state.tree.get(frame.assistant_message_id) !== undefined;
  if (frame.user_message) {
    const user = frame.user_message;
    state.tree.add({ id: user.id, parent_id: user.parent_id, role: "user", text: user.text, content: [] });
  }
  const answer = state.tree.add({
    id: frame.assistant_message_id, parent_id: frame.parent_id, role: "assistant", text: frame.text || "",
    content: [], endpoint: frame.endpoint, model: frame.model, sender: frame.sender, tokens: {}, usage: null,
  });
  Object.assign(answer, { finish_reason: "", unfinished: false, error: "" });
  state.prefix.set(answer.id, frame.text || "");
  if (frame.endpoint && !state.endpoints[frame.endpoint]) state.endpoints[frame.endpoint] = null;
  state.running = { messageId: answer.id, generationId: frame.generation_id };
  if (mine || !known) showBranchOf(answer.id);
  else if (state.elements.has(answer.id)) refresh(answer.id);
  updateComposer();
  stick();
}

function onDelta(frame) {
  const node = state.tree.get(frame.message_id);
  if (!node) return;
  if (frame.snapshot) {
    node.text = (state.prefix.get(node.id) || "") + (frame.text || "");
    node.content = frame.reasoning ? [{ type: "reasoning", text: frame.reasoning }] : [];
  } else {
    if (frame.text) node.text = (node.text || "") + frame.text;
    if (frame.reasoning) {
      const part = node.content.find((p) => p.type === "reasoning");
      if (part) part.text += frame.reasoning;
      else node.content = [{ type: "reasoning", text: frame.reasoning }, ...node.content];
    }
  }
  if (!state.elements.has(node.id) || !list.contains(elementFor(node.id))) return;
  const item = elementFor(node.id);
  const streaming = state.running !== null && state.running.messageId === node.id;
  if (frame.text || frame.snapshot) updateMessage(item, node, { streaming, busy: true });
  else updateReasoning(item, node, streaming);
  stick();
}

function onUsage(frame) {
  const node = state.tree.get(frame.message_id);
  if (!node) return;
  const usage = frame.usage || {};
  node.tokens = { prompt: usage.prompt_tokens, completion: usage.completion_tokens, reasoning: usage.reasoning_tokens };
}

async function refreshBalance() {
  const badge = document.querySelector("#balance-badge [data-balance]");
  if (!badge) return;
  try {
    const balance = await api("/api/balance");
    badge.textContent = balance.display;
    document.getElementById("balance-badge").classList.toggle("empty", Number(balance.available) <= 0);
  } catch {
    // the badge keeps its last figure
  }
}

async function refreshMessage(id) {
  try {
    const stored = await api(`/api/messages/${id}`);
    const node = state.tree.get(id);
    Object.assign(node, {
      text: stored.text, content: stored.content, tokens: stored.tokens, usage: stored.usage,
      finish_reason: stored.finish_reason, unfinished: stored.unfinished, error: stored.error,
    });
    if (state.elements.has(id)) refresh(id);
  } catch {
    // shown as it streamed
  }
}

function onDone(frame) {
  const node = state.tree.get(frame.message_id);
  if (node) Object.assign(node, { finish_reason: frame.finish_reason, unfinished: frame.unfinished, error: frame.error || node.error });
  if (state.running && state.running.messageId === frame.message_id) state.running = null;
  updateComposer();
  if (node && state.elements.has(node.id)) refresh(node.id);
  stick();
  emit("atrium:turn-done", { conversation_id: frame.conversation_id, message_id: frame.message_id });
  refreshBalance();
  if (node) refreshMessage(node.id); // its cost, as billed
}

function onError(frame) {
  if (frame.message_id) {
    const node = state.tree.get(frame.message_id);
    if (node) node.error = frame.message;
  } else if (frame.request_id && state.pending.has(frame.request_id)) {
    // Refused before it started: give back what the user wrote.
    const kept = state.pending.get(frame.request_id);
    state.pending.delete(frame.request_id);
    if (kept.editing && list.contains(elementFor(kept.editing))) edit(kept.editing, kept.text);
    else if (!input.value.trim()) input.value = kept.text;
  }
  if (frame.request_id && frame.request_id === state.awaiting) state.awaiting = null;
  notices.error(frame);
  updateComposer();
}

function onJoined(frame) {
  if (frame.conversation_id !== state.conversationId) return;
  if (!frame.live && state.running) {
    // The answer ended while the connection was down, longer ago than the server keeps its frames.
    const id = state.running.messageId;
    state.running = null;
    refreshMessage(id);
    updateComposer();
  }
}

function onTitle(frame) {
  if (frame.conversation_id !== state.conversationId) return;
  document.title = `${frame.title} · Atrium`;
  emit("atrium:conversation", { id: frame.conversation_id, title: frame.title, new: false, temporary: state.temporary });
}

const handlers = { created: onCreated, delta: onDelta, usage: onUsage, done: onDone, error: onError, joined: onJoined, title: onTitle };

function onFrame(frame) {
  if (!fresh(frame)) return;
  const handler = handlers[frame.type];
  if (handler) handler(frame);
}

const socket = new ChatSocket({
  onFrame,
  onState(kind, seconds) {
    notices.connectionState(kind, seconds);
    if (kind === "open" && state.conversationId) socket.send({ type: "join", conversation_id: state.conversationId });
    if (kind !== "open") state.awaiting = null;
    updateComposer();
  },
});

// --- start -------------------------------------------------------------------------------------

const focus = data.focus && state.tree.get(data.focus) ? data.focus : null;
if (focus) state.tree.show(focus);
drawBranch({ focus });
if (focus) {
  const item = elementFor(focus);
  item.classList.add("is-target");
  item.scrollIntoView({ block: "center" });
  state.atBottom = false;
} else {
  scroller.scrollTop = scroller.scrollHeight;
}
socket.connect();
conversationLoaded(data.conversation);
input.focus();
updateComposer();
performance.mark("atrium:chat-ready"); // bench/page.py times the page up to here
