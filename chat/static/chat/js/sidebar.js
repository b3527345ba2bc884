// The chat page's conversation sidebar (templates/chat/sidebar.html): the user's conversations
// grouped by local day and loaded as the list scrolls, the archive (loaded when opened), a bookmark
// filter, search, each conversation's menu, and at phone width an off-canvas drawer.
// Listens to `atrium:conversation` ({id, title, new, temporary}) from the chat pane.
import { api } from "./sidebar-util.js";
import { Feed, makeItem, setTitle, tagsOf } from "./sidebar-list.js";
import { Menu } from "./sidebar-menu.js";
import { Search } from "./sidebar-search.js";
import { Drawer } from "./sidebar-drawer.js";
import { dayNumber } from "./sidebar-groups.js";

const ACTIVE = { archived: false, temporary: false };

class Sidebar {
  constructor(root) {
    this.root = root;
    this.currentId = root.dataset.current || null;
    this.notice = root.querySelector(".sb-notice");
    this.tagBar = root.querySelector(".sb-tags");
    this.tag = null;
    const scrollRoot = root.querySelector("#sb-scroll");
    const pageSize = Number(root.dataset.pageSize) || 30;
    const list = root.querySelector("#sb-list");
    this.feed = new Feed({
      container: list, sentinel: root.querySelector("#sb-sentinel"), empty: list.parentElement.querySelector(":scope > .sb-empty"),
      scrollRoot, params: { ...ACTIVE }, grouped: true, cursor: list.dataset.cursor || null,
      currentId: this.currentId, pageSize,
    });
    const archive = root.querySelector("#sb-archived");
    this.archive = new Feed({
      container: root.querySelector("#sb-archived-list"), sentinel: root.querySelector("#sb-archived-sentinel"),
      empty: archive.querySelector(".sb-empty"), scrollRoot, params: { archived: true, temporary: false },
      grouped: false, cursor: null, currentId: this.currentId, pageSize,
    });
    for (const feed of [this.feed, this.archive]) feed.onError = (error) => this.notify(error.message);
    this.feed.adopt();
    archive.addEventListener("toggle", () => {
      if (archive.open && !this.archive.started) this.archive.reset();
    });
    this.tagBar?.addEventListener("click", (event) => {
      const button = event.target.closest(".sb-tag");
      if (button) this.filter(button.dataset.tag === this.tag ? null : button.dataset.tag);
    });
    this.menu = new Menu(this);
    this.search = new Search(root);
    this.drawer = new Drawer(root);
    document.addEventListener("atrium:conversation", (event) => this.conversation(event.detail || {}));
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible" && this.feed.day !== dayNumber(new Date())) this.feed.regroup();
    });
  }

  // The last message the chat pane shows (the end of the branch drawn in #chat-messages) when
  // conversation `id` is the open one; else null.
  shownLeaf(id) {
    if (id !== this.currentId) return null;
    return document.querySelector("#chat-messages > .msg:last-child")?.dataset.id || null;
  }

  notify(message) {
    this.notice.textContent = message;
    this.notice.hidden = !message;
  }

  feedOf(li) {
    if (li.closest("#sb-archived-list")) return this.archive;
    return li.closest("#sb-list") ? this.feed : null;
  }

  // Show only the conversations with this bookmark (null: all).
  filter(tag) {
    this.tag = tag;
    for (const button of this.tagBar.querySelectorAll(".sb-tag")) {
      button.setAttribute("aria-pressed", String(button.dataset.tag === tag));
    }
    this.feed.reset({ ...ACTIVE, tag });
  }

  // The bookmark filter's buttons and counts, as the API has them now.
  async refreshTags() {
    if (!this.tagBar) return;
    let tags;
    try {
      tags = await api("GET", "/api/library/tags");
    } catch (error) {
      this.notify(error.message);
      return;
    }
    const buttons = tags.map((tag) => {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "sb-tag";
      button.dataset.tag = tag.name;
      button.setAttribute("aria-pressed", String(tag.name === this.tag));
      const name = document.createElement("span");
      name.className = "sb-tag-name";
      name.textContent = tag.name;
      const count = document.createElement("span");
      count.className = "sb-count";
      count.textContent = String(tag.count);
      button.append(name, " ", count);
      return button;
    });
    this.tagBar.replaceChildren(...buttons);
    this.tagBar.hidden = buttons.length === 0;
    if (this.tag && !tags.some((t) => t.name === this.tag)) this.filter(null);
  }

  // A conversation's bookmarks changed: it leaves a list filtered by one it no longer has.
  retagged(li) {
    if (this.tag && this.feedOf(li) === this.feed && !tagsOf(li).includes(this.tag)) this.feed.remove(li);
  }

  // Archived (or restored): into the other list, where it is shown.
  moved(li, archived) {
    const target = archived ? this.archive : this.feed;
    if (archived && !this.archive.started) return;  // (the archive loads it when opened)
    if (!archived && this.tag && !tagsOf(li).includes(this.tag)) return;
    li.querySelector(".sb-menu-button").setAttribute("aria-expanded", "false");
    target.place(li);
  }

  markCurrent(id) {
    this.currentId = id;
    this.feed.currentId = this.archive.currentId = id;
    this.root.dataset.current = id;
    for (const link of this.root.querySelectorAll(".sb-link")) {
      if (link.closest(".sb-item").dataset.id === id) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
  }

  // From the chat pane: a conversation was created, or got its title. A temporary chat is not listed.
  conversation({ id, title, new: created, temporary }) {
    if (!id) return;
    const li = this.feed.find(id) || this.archive.find(id);
    if (li) {
      if (title) setTitle(li, title);
    } else if (!temporary && (created || !this.tag)) {
      const item = makeItem({ id, title: title || "", updated_at: new Date().toISOString(), tags: [] }, id);
      this.feed.place(item);
    }
    this.markCurrent(id);
  }
}

export { Sidebar };

const root = document.getElementById("sidebar-panel");
if (root) new Sidebar(root);
