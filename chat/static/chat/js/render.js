// One renderer for answers, in the chat (history and live stream alike) and on share pages.
//
//   renderMarkdown(element, text)  Markdown, sanitized, code highlighted with copy buttons, math.
//                                  Call it as often as text grows: it renders at most once per
//                                  animation frame, and only the blocks whose source changed are
//                                  replaced, so finished paragraphs and code blocks (their
//                                  highlighting, a selection, a "Copied" state) stay as they are.
//                                  Returns a promise settled once that text is on screen.
//   renderPlain(element, text)     Text as typed, line breaks kept (user messages): never HTML.
import { blockHtml, blocks } from "./render/markdown.js";
import { loadMath, mathReady, mathWaiting } from "./render/math.js";
import { sanitize } from "./render/sanitize.js";
import { gettext } from "./i18n.js";

const COPIED_FOR_MS = 2000;
const rendered = new WeakMap(); // element → {text, blocks: [{key, nodes, waitsForMath}]}
const queued = new Map(); // element → {text, done: [resolve…]}
let frame = 0;

export function renderMarkdown(element, text) {
  return new Promise((resolve) => {
    const entry = queued.get(element) || { text: "", done: [] };
    entry.text = text == null ? "" : String(text);
    entry.done.push(resolve);
    queued.set(element, entry);
    if (!frame) frame = requestAnimationFrame(flush);
  });
}

export function renderPlain(element, text) {
  settle(element);
  rendered.delete(element);
  element.classList.remove("markdown");
  element.classList.add("plain-text");
  element.dir = "auto"; // the direction of what was typed, whatever the page's language
  element.textContent = text == null ? "" : String(text);
}

function settle(element) {
  const entry = queued.get(element);
  queued.delete(element);
  if (entry) entry.done.forEach((resolve) => resolve());
}

function flush() {
  frame = 0;
  const entries = [...queued];
  queued.clear();
  for (const [element, entry] of entries) {
    if (!paint(element, entry.text)) {
      entry.done.forEach((resolve) => resolve());
      continue;
    }
    // Some formulas wait for KaTeX: render again once it is there (unless newer text came first).
    loadMath()
      .then(() => (queued.has(element) ? undefined : renderMarkdown(element, rendered.get(element)?.text ?? entry.text)))
      .catch(() => undefined)
      .finally(() => entry.done.forEach((resolve) => resolve()));
  }
}

// Brings `element` to `text`; true when some math is shown as source until KaTeX loads.
function paint(element, text) {
  let state = rendered.get(element);
  const intact = state && state.blocks.every((block) => block.nodes.every((node) => node.parentNode === element));
  if (!intact) {
    state = { text: null, blocks: [] };
    element.replaceChildren();
    element.classList.remove("plain-text");
    element.classList.add("markdown");
    rendered.set(element, state);
  }
  const stale = (block) => block.waitsForMath && mathReady();
  if (state.text === text && !state.blocks.some(stale)) return false;

  const next = [];
  let cursor = null; // the last node in place so far
  const place = (nodes) => {
    const before = cursor ? cursor.nextSibling : element.firstChild;
    for (const node of nodes) element.insertBefore(node, before);
    if (nodes.length) cursor = nodes[nodes.length - 1];
  };
  blocks(text).forEach((block, index) => {
    const old = state.blocks[index];
    if (old && old.key === block.key && !stale(old)) {
      if (old.nodes.length) cursor = old.nodes[old.nodes.length - 1];
      next.push(old);
      return;
    }
    if (old) old.nodes.forEach((node) => node.remove());
    const waitingBefore = mathWaiting();
    const nodes = [...sanitize(blockHtml(block)).childNodes];
    place(nodes);
    next.push({ key: block.key, nodes, waitsForMath: mathWaiting() > waitingBefore });
  });
  state.blocks.slice(next.length).forEach((block) => block.nodes.forEach((node) => node.remove()));
  state.blocks = next;
  state.text = text;
  return next.some((block) => block.waitsForMath);
}

// Copy buttons on code blocks (one listener for every answer, present and future).
document.addEventListener("click", (event) => {
  const button = event.target instanceof Element ? event.target.closest(".markdown .code-copy") : null;
  if (!button) return;
  const code = button.closest(".code-block")?.querySelector("pre code");
  if (!code) return;
  navigator.clipboard.writeText(code.textContent).then(
    () => showCopyState(button, "copied", gettext("Copied")),
    () => showCopyState(button, "failed", gettext("Could not copy")),
  );
});

function showCopyState(button, state, label) {
  const status = button.parentElement.querySelector(".code-status");
  button.textContent = label;
  button.dataset.state = state;
  if (status) status.textContent = label;
  clearTimeout(Number(button.dataset.timer));
  button.dataset.timer = String(
    setTimeout(() => {
      button.textContent = gettext("Copy");
      delete button.dataset.state;
      if (status) status.textContent = "";
    }, COPIED_FOR_MS),
  );
}
