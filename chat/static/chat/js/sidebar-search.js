// The sidebar's search box: GET /api/library/search as the user types (debounced); each hit links
// to its message (/c/<id>?m=<message>). Arrow keys move through the results, Esc clears.
import { api, gettext, interpolate, ngettext, query } from "./sidebar-util.js";

const DELAY_MS = 250;
const ENTITIES = { "&amp;": "&", "&lt;": "<", "&gt;": ">", "&quot;": '"', "&#x27;": "'", "&#39;": "'" };

// The API's snippet is HTML-escaped text with matches in <mark> (chat/search.py). It is turned into
// text nodes and <mark> elements here, never parsed as HTML: whatever it holds shows as text.
export function snippetNodes(snippet) {
  const nodes = [];
  let marked = false;
  for (const part of snippet.split(/(<mark>|<\/mark>)/)) {
    if (part === "<mark>" || part === "</mark>") {
      marked = part === "<mark>";
      continue;
    }
    if (!part) continue;
    const text = part.replace(/&(amp|lt|gt|quot|#x27|#39);/g, (entity) => ENTITIES[entity]);
    if (marked) {
      const mark = document.createElement("mark");
      mark.textContent = text;
      nodes.push(mark);
    } else {
      nodes.push(document.createTextNode(text));
    }
  }
  return nodes;
}

function hitItem(hit) {
  const li = document.createElement("li");
  const link = document.createElement("a");
  link.className = "sb-hit";
  link.href = `/c/${hit.conversation_id}?m=${hit.message_id}`;
  const title = document.createElement("span");
  title.className = "sb-hit-title";
  title.textContent = hit.conversation_title;
  const snippet = document.createElement("span");
  snippet.className = "sb-hit-snippet";
  snippet.append(...snippetNodes(hit.snippet));
  link.append(title, snippet);
  li.append(link);
  return li;
}

export class Search {
  constructor(root) {
    this.form = root.querySelector(".sb-search");
    this.input = root.querySelector("#sb-search-input");
    this.panel = root.querySelector("#sb-search-panel");
    this.status = this.panel.querySelector(".sb-search-status");
    this.results = this.panel.querySelector("#sb-results");
    this.list = root.querySelector("#sb-scroll");
    this.sequence = 0;
    this.timer = null;
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.run();
    });
    this.input.addEventListener("input", () => {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.run(), DELAY_MS);
    });
    this.input.addEventListener("keydown", (event) => this.onInputKey(event));
    this.results.addEventListener("keydown", (event) => this.onResultsKey(event));
  }

  links() {
    return [...this.results.querySelectorAll("a")];
  }

  clear() {
    clearTimeout(this.timer);
    this.sequence += 1;
    this.input.value = "";
    this.results.replaceChildren();
    this.panel.hidden = true;
    this.list.hidden = false;
  }

  async run() {
    clearTimeout(this.timer);
    const q = this.input.value.trim();
    if (!q) {
      this.clear();
      return;
    }
    const sequence = ++this.sequence;
    this.panel.hidden = false;
    this.list.hidden = true;
    this.panel.setAttribute("aria-busy", "true");
    try {
      const hits = await api("GET", `/api/library/search?${query({ q, limit: 20 })}`);
      if (sequence !== this.sequence) return;  // (a newer query is under way)
      this.results.replaceChildren(...hits.map(hitItem));
      this.status.textContent = hits.length
        ? interpolate(ngettext("%s match", "%s matches", hits.length), [hits.length])
        : gettext("No messages match.");
    } catch (error) {
      if (sequence !== this.sequence) return;
      this.results.replaceChildren();
      this.status.textContent = error.message;
    } finally {
      if (sequence === this.sequence) this.panel.removeAttribute("aria-busy");
    }
  }

  onInputKey(event) {
    if (event.key === "Escape" && (this.input.value || !this.panel.hidden)) {
      event.preventDefault();
      event.stopPropagation();  // (Esc clears the search; it does not also close the drawer)
      this.clear();
    } else if (event.key === "ArrowDown" && this.links().length) {
      event.preventDefault();
      this.links()[0].focus();
    }
  }

  onResultsKey(event) {
    const links = this.links();
    const at = links.indexOf(document.activeElement);
    const moves = { ArrowDown: at + 1, ArrowUp: at - 1, Home: 0, End: links.length - 1 };
    if (event.key in moves) {
      event.preventDefault();
      const target = moves[event.key];
      if (target < 0) this.input.focus();
      else links[Math.min(target, links.length - 1)].focus();
    } else if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation();
      this.clear();
      this.input.focus();
    }
  }
}
