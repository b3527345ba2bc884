// The conversation menu's "Share…": a dialog that makes a share link (POST
// /api/library/conversations/{id}/shares) of the branch the chat shows, up to its current message,
// with an optional last day, then shows the link with a Copy button.
import { api, gettext } from "./sidebar-util.js";
import { itemId, titleOf } from "./sidebar-list.js";

// A date input's day (YYYY-MM-DD) → the end of that day in the reader's time zone, as ISO 8601.
function endOfDay(day) {
  const [year, month, date] = day.split("-").map(Number);
  return new Date(year, month - 1, date, 23, 59, 59).toISOString();
}

function today() {
  const now = new Date();
  const pad = (n) => String(n).padStart(2, "0");
  return `${now.getFullYear()}-${pad(now.getMonth() + 1)}-${pad(now.getDate())}`;
}

async function copyText(text, field) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    field.select();
    return document.execCommand("copy");
  }
}

export class ShareDialog {
  // dialog: #sb-share-dialog; shownLeaf(id): the last message the chat pane shows of conversation
  // `id` when it is the open one (null otherwise: the API then takes the branch the chat shows).
  constructor(dialog, shownLeaf) {
    this.dialog = dialog;
    this.shownLeaf = shownLeaf;
    this.li = null;
    this.expiry = dialog.querySelector("#sb-share-expiry");
    this.url = dialog.querySelector("#sb-share-url");
    this.create = dialog.querySelector("[data-action=create-share]");
    this.copy = dialog.querySelector("[data-action=copy-share]");
    this.status = dialog.querySelector(".sb-share-status");
    this.error = dialog.querySelector(".sb-dialog-error");
    this.create.addEventListener("click", () => this.make());
    this.expiry.addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault();  // (Enter makes the link, it does not close the dialog)
        this.make();
      }
    });
    this.copy.addEventListener("click", () => this.copyLink());
    dialog.addEventListener("close", () => this.li?.querySelector(".sb-menu-button")?.focus());
  }

  open(li) {
    this.li = li;
    this.dialog.querySelector(".sb-dialog-subject").textContent = titleOf(li);
    this.dialog.querySelector(".sb-share-new").hidden = false;
    this.dialog.querySelector(".sb-share-made").hidden = true;
    this.expiry.value = "";
    this.expiry.min = today();
    this.error.textContent = "";
    this.status.textContent = "";
    this.copy.textContent = gettext("Copy");
    this.create.disabled = false;
    this.dialog.showModal();
    this.expiry.focus();
  }

  async make() {
    const id = itemId(this.li);
    const body = {};
    const leaf = this.shownLeaf(id);
    if (leaf) body.message_id = leaf;
    if (this.expiry.value) body.expires_at = endOfDay(this.expiry.value);
    this.create.disabled = true;
    this.error.textContent = "";
    let link;
    try {
      link = await api("POST", `/api/library/conversations/${id}/shares`, body);
    } catch (failure) {
      this.error.textContent = failure.message;
      this.create.disabled = false;
      return;
    }
    this.url.value = link.url;
    this.dialog.querySelector(".sb-share-new").hidden = true;
    this.dialog.querySelector(".sb-share-made").hidden = false;
    this.url.focus();
    this.url.select();
  }

  async copyLink() {
    const ok = await copyText(this.url.value, this.url);
    this.copy.textContent = ok ? gettext("Copied") : gettext("Copy");
    this.status.textContent = ok
      ? gettext("Copied to the clipboard.")
      : gettext("Could not copy: select the text and copy it yourself.");
  }
}
