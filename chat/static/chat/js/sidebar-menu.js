// Each conversation's menu (a menu button, arrow keys inside, Esc closes) and what it does:
// rename inline, bookmarks, share (sidebar-share.js), downloads of the conversation (links to
// GET /api/library/conversations/{id}/export), archive / restore, delete after a confirmation dialog.
import { api, gettext } from "./sidebar-util.js";
import { itemId, setTitle, tagsOf, titleOf } from "./sidebar-list.js";
import { ShareDialog } from "./sidebar-share.js";

export class Menu {
  // sidebar: the Sidebar (sidebar.js) whose lists, notice and bookmarks filter the actions update.
  constructor(sidebar) {
    this.sidebar = sidebar;
    this.root = sidebar.root;
    this.menu = this.root.querySelector("#sb-menu");
    this.button = null;
    this.root.addEventListener("click", (event) => {
      const button = event.target.closest(".sb-menu-button");
      if (button) this.toggle(button);
    });
    this.root.addEventListener("keydown", (event) => {
      const button = event.target.closest(".sb-menu-button");
      if (button && event.key === "ArrowDown") {
        event.preventDefault();
        this.open(button);
      }
    });
    this.menu.addEventListener("keydown", (event) => this.onKey(event));
    this.menu.addEventListener("click", (event) => {
      const entry = event.target.closest("[role=menuitem]");
      if (entry) this.act(entry.dataset.action);
    });
    document.addEventListener("pointerdown", (event) => {
      if (this.button && !this.menu.contains(event.target) && !this.button.contains(event.target)) this.close(false);
    });
    this.deleteDialog = this.root.querySelector("#sb-delete-dialog");
    this.tagsDialog = this.root.querySelector("#sb-tags-dialog");
    if (this.tagsDialog) this.wireTags();
    const shareDialog = this.root.querySelector("#sb-share-dialog");
    this.share = shareDialog ? new ShareDialog(shareDialog, (id) => sidebar.shownLeaf(id)) : null;
  }

  entries() {
    return [...this.menu.querySelectorAll("[role=menuitem]")].filter((e) => !e.hidden);
  }

  toggle(button) {
    if (this.button === button) this.close(true);
    else this.open(button);
  }

  open(button) {
    this.close(false);
    const li = button.closest(".sb-item");
    const archived = Boolean(li.closest("#sb-archived-list"));
    this.menu.querySelector("[data-action=archive]").hidden = archived;
    this.menu.querySelector("[data-action=unarchive]").hidden = !archived;
    const share = this.menu.querySelector("[data-action=share]");
    if (share) share.hidden = li.dataset.temporary === "true";  // (a temporary chat cannot be shared)
    for (const link of this.menu.querySelectorAll("[data-action=export]")) {
      link.href = `/api/library/conversations/${itemId(li)}/export?format=${link.dataset.format}`;
    }
    li.append(this.menu);
    this.menu.hidden = false;
    this.button = button;
    button.setAttribute("aria-expanded", "true");
    this.entries()[0].focus();
  }

  close(refocus) {
    if (!this.button) return;
    const button = this.button;
    this.button = null;
    this.menu.hidden = true;
    button.setAttribute("aria-expanded", "false");
    this.root.append(this.menu);
    if (refocus) button.focus();
  }

  onKey(event) {
    const entries = this.entries();
    const at = entries.indexOf(document.activeElement);
    const moves = { ArrowDown: at + 1, ArrowUp: at - 1 + entries.length, Home: 0, End: entries.length - 1 };
    if (event.key in moves) {
      event.preventDefault();
      entries[moves[event.key] % entries.length].focus();
    } else if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation();
      this.close(true);
    } else if (event.key === "Tab") {
      this.close(false);
    }
  }

  act(action) {
    const li = this.button.closest(".sb-item");
    this.close(false);
    if (action === "rename") this.rename(li);
    else if (action === "delete") this.confirmDelete(li);
    else if (action === "tags") this.editTags(li);
    else if (action === "share") this.share.open(li);
    else if (action === "archive" || action === "unarchive") this.archive(li, action === "archive");
  }

  // --- rename: an input in place of the title; Enter (or leaving it) saves, Esc cancels ---

  rename(li) {
    const link = li.querySelector(".sb-link");
    const before = titleOf(li);
    const input = document.createElement("input");
    input.type = "text";
    input.className = "sb-rename";
    input.maxLength = 300;
    input.value = before;
    input.setAttribute("aria-label", gettext("Conversation title"));
    link.hidden = true;
    li.insertBefore(input, link);
    input.focus();
    input.select();
    let done = false;
    const finish = () => {
      done = true;
      input.remove();
      link.hidden = false;
    };
    const save = async () => {
      const title = input.value.trim();
      if (done) return;
      if (!title || title === before) {
        finish();
        link.focus();
        return;
      }
      done = true;
      try {
        const conversation = await api("PATCH", `/api/conversations/${itemId(li)}`, { title });
        setTitle(li, conversation.title);
        li.dataset.updated = conversation.updated_at;
        input.remove();
        link.hidden = false;
        this.sidebar.feedOf(li)?.place(li);
        link.focus();
      } catch (error) {
        done = false;  // (the typed title stays, to try again)
        this.sidebar.notify(error.message);
        input.focus();
      }
    };
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault();
        save();
      } else if (event.key === "Escape") {
        event.preventDefault();
        event.stopPropagation();
        finish();
        link.focus();
      }
    });
    input.addEventListener("blur", () => save());
  }

  // --- delete, after the dialog says yes ---

  confirmDelete(li) {
    const dialog = this.deleteDialog;
    dialog.querySelector(".sb-dialog-subject").textContent = titleOf(li);
    dialog.returnValue = "";
    dialog.addEventListener("close", async () => {
      if (dialog.returnValue !== "delete") {
        li.querySelector(".sb-menu-button").focus();
        return;
      }
      try {
        await api("DELETE", `/api/conversations/${itemId(li)}`);
      } catch (error) {
        this.sidebar.notify(error.message);
        return;
      }
      const wasOpen = this.sidebar.currentId === itemId(li);
      const next = li.nextElementSibling?.querySelector(".sb-link") || this.root.querySelector(".sb-new");
      this.sidebar.feedOf(li)?.remove(li);
      if (wasOpen) {
        window.location.assign("/");
        return;
      }
      next.focus();
      this.sidebar.refreshTags();
    }, { once: true });
    dialog.showModal();
  }

  // --- archive or restore ---

  async archive(li, archived) {
    try {
      await api("PUT", `/api/library/conversations/${itemId(li)}/archive`, { archived });
    } catch (error) {
      this.sidebar.notify(error.message);
      return;
    }
    this.sidebar.feedOf(li)?.remove(li);
    this.sidebar.moved(li, archived);
  }

  // --- bookmarks: tick existing ones, create one, save ---

  wireTags() {
    const dialog = this.tagsDialog;
    const name = dialog.querySelector("#sb-tag-name");
    const add = () => this.addTag(name.value);
    dialog.querySelector("[data-action=add-tag]").addEventListener("click", add);
    name.addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault();  // (Enter adds the bookmark, it does not submit the dialog)
        add();
      }
    });
  }

  choice(name, checked) {
    const li = document.createElement("li");
    const label = document.createElement("label");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.value = name;
    box.checked = checked;
    label.append(box, document.createTextNode(" " + name));
    li.append(label);
    return li;
  }

  showChoices(names, chosen) {
    const list = this.tagsDialog.querySelector(".sb-tag-choices ul");
    list.replaceChildren(...names.map((n) => this.choice(n, chosen.has(n))));
    this.tagsDialog.querySelector(".sb-tag-none").hidden = names.length > 0;
  }

  async addTag(raw) {
    const dialog = this.tagsDialog;
    const error = dialog.querySelector(".sb-dialog-error");
    const name = raw.trim();
    if (!name) return;
    try {
      const tag = await api("POST", "/api/library/tags", { name });
      error.textContent = "";
      const boxes = [...dialog.querySelectorAll(".sb-tag-choices input")];
      const box = boxes.find((b) => b.value === tag.name);
      if (box) box.checked = true;
      else dialog.querySelector(".sb-tag-choices ul").append(this.choice(tag.name, true));
      dialog.querySelector(".sb-tag-none").hidden = true;
      dialog.querySelector("#sb-tag-name").value = "";
      this.sidebar.refreshTags();
    } catch (failure) {
      error.textContent = failure.message;
    }
  }

  async editTags(li) {
    const dialog = this.tagsDialog;
    dialog.querySelector(".sb-dialog-subject").textContent = titleOf(li);
    dialog.querySelector(".sb-dialog-error").textContent = "";
    dialog.querySelector("#sb-tag-name").value = "";
    let all;
    try {
      all = await api("GET", "/api/library/tags");
    } catch (error) {
      this.sidebar.notify(error.message);
      return;
    }
    this.showChoices(all.map((t) => t.name), new Set(tagsOf(li)));
    dialog.returnValue = "";
    dialog.addEventListener("close", async () => {
      li.querySelector(".sb-menu-button").focus();
      if (dialog.returnValue !== "save") return;
      const tags = [...dialog.querySelectorAll(".sb-tag-choices input:checked")].map((b) => b.value);
      try {
        const saved = await api("PUT", `/api/library/conversations/${itemId(li)}/tags`, { tags });
        li.dataset.tags = JSON.stringify(saved.tags);
        this.sidebar.retagged(li);
      } catch (error) {
        this.sidebar.notify(error.message);
      }
      this.sidebar.refreshTags();
    }, { once: true });
    dialog.showModal();
  }
}
