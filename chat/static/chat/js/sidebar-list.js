// The sidebar's lists: items made from the API's conversations, placed newest first (in groups
// by day for the main list), and a Feed that loads further pages as its end scrolls into view.
import { api, query } from "./sidebar-util.js";
import { dayNumber, groupOf } from "./sidebar-groups.js";

const template = () => document.getElementById("sb-item-template");

export function itemId(li) {
  return li.dataset.id;
}

export function titleOf(li) {
  return li.querySelector(".sb-link").textContent;
}

export function setTitle(li, title) {
  li.querySelector(".sb-link").textContent = title;
}

export function tagsOf(li) {
  try {
    return JSON.parse(li.dataset.tags || "[]");
  } catch {
    return [];
  }
}

// A list item for a conversation of the API ({id, title, updated_at, tags}); text only, never markup.
export function makeItem(conversation, currentId) {
  const li = template().content.firstElementChild.cloneNode(true);
  const link = li.querySelector(".sb-link");
  const button = li.querySelector(".sb-menu-button");
  li.dataset.id = conversation.id;
  li.dataset.updated = conversation.updated_at;
  li.dataset.tags = JSON.stringify(conversation.tags || []);
  if (conversation.temporary) li.dataset.temporary = "true";
  link.href = `/c/${conversation.id}`;
  link.id = `sbt-${conversation.id}`;
  link.textContent = conversation.title;
  if (conversation.id === currentId) link.setAttribute("aria-current", "page");
  button.id = `sbo-${conversation.id}`;
  button.setAttribute("aria-labelledby", `${button.id} ${link.id}`);
  return li;
}

// Newer first; the same (updated, id) order as the API's pages.
function before(a, b) {
  const ta = Date.parse(a.dataset.updated), tb = Date.parse(b.dataset.updated);
  return ta !== tb ? ta > tb : a.dataset.id > b.dataset.id;
}

function insertSorted(ol, li) {
  const next = [...ol.children].find((other) => other !== li && before(li, other));
  ol.insertBefore(li, next || null);
}

export class Feed {
  // container: the element holding the items (grouped: sections by day; flat: an <ol>);
  // sentinel: the element whose appearing loads the next page; params: the API's filters.
  constructor({ container, sentinel, empty, scrollRoot, params, grouped, cursor, currentId, pageSize }) {
    Object.assign(this, { container, sentinel, empty, params, grouped, cursor, currentId, pageSize });
    this.loading = null;
    this.generation = 0;  // (bumped by reset: answers for older filters are dropped)
    this.onError = () => {};
    this.observer = new IntersectionObserver((entries) => {
      if (entries.some((e) => e.isIntersecting)) this.more();
    }, { root: scrollRoot, rootMargin: "200px 0px" });
  }

  items() {
    return [...this.container.querySelectorAll(".sb-item")];
  }

  find(id) {
    return this.items().find((li) => li.dataset.id === id) || null;
  }

  // Put an item (new or moved) where its last activity says.
  place(li) {
    this.day = dayNumber(new Date());
    if (!this.grouped) {
      insertSorted(this.container, li);
    } else {
      const group = groupOf(new Date(li.dataset.updated));
      const previous = li.closest(".sb-group");
      insertSorted(this.section(group).querySelector(".sb-items"), li);
      if (previous) this.prune(previous);
    }
    this.refreshEmpty();
  }

  remove(li) {
    const group = li.closest(".sb-group");
    li.remove();
    if (group) this.prune(group);
    this.refreshEmpty();
  }

  section(group) {
    const found = this.container.querySelector(`.sb-group[data-group="${group.key}"]`);
    if (found) return found;
    const section = document.createElement("section");
    section.className = "sb-group";
    section.dataset.group = group.key;
    section.dataset.order = String(group.order);
    const heading = document.createElement("h2");
    heading.className = "sb-group-title";
    heading.id = `sbg-${group.key}`;
    heading.textContent = group.label;
    section.setAttribute("aria-labelledby", heading.id);
    const ol = document.createElement("ol");
    ol.className = "sb-items";
    section.append(heading, ol);
    const next = [...this.container.querySelectorAll(".sb-group")].find((s) => Number(s.dataset.order) > group.order);
    this.container.insertBefore(section, next || null);
    return section;
  }

  prune(section) {
    if (!section.querySelector(".sb-item")) section.remove();
  }

  refreshEmpty() {
    if (this.empty) this.empty.hidden = this.items().length > 0 || Boolean(this.cursor) || Boolean(this.loading);
  }

  // Group everything again (the day changed while the page was open).
  regroup() {
    const items = this.items();
    this.container.replaceChildren();
    for (const li of items) this.place(li);
  }

  // The items rendered by the server: into their groups.
  adopt() {
    const loose = [...this.container.querySelectorAll(":scope > ol.sb-items > .sb-item")];
    for (const li of loose) this.place(li);
    this.container.querySelectorAll(":scope > ol.sb-items").forEach((ol) => ol.remove());
    this.watch();
  }

  watch() {
    this.observer.unobserve(this.sentinel);
    if (!this.sentinel.isConnected) return;
    this.sentinel.hidden = !this.cursor;
    if (this.cursor) this.observer.observe(this.sentinel);  // (observing again reports the current state)
  }

  // Start over with other filters (a bookmark chosen) or from the beginning (the archive opened).
  async reset(params) {
    if (params) this.params = params;
    this.container.replaceChildren();
    this.cursor = null;
    this.started = true;
    await this.more(true);
  }

  // The next page (first: the first page, dropping any page still on its way for older filters).
  more(first = false) {
    if (!first && (this.loading || !this.cursor)) return this.loading;
    const generation = first ? ++this.generation : this.generation;
    const params = { ...this.params, limit: this.pageSize, cursor: first ? null : this.cursor };
    const load = api("GET", `/api/conversations?${query(params)}`)
      .then((page) => {
        if (generation !== this.generation) return;
        for (const conversation of page.items) {
          if (!this.find(conversation.id)) this.place(makeItem(conversation, this.currentId));
        }
        this.cursor = page.next_cursor;
        this.watch();
      }, (error) => {
        if (generation !== this.generation) return;
        this.sentinel.hidden = true;  // (no retry loop: the next reset tries again)
        this.onError(error);
      })
      .finally(() => {
        if (this.loading === load) this.loading = null;
        this.refreshEmpty();
      });
    this.loading = load;
    return load;
  }
}
