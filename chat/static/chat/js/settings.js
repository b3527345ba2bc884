// The settings pages' one behaviour: copy buttons. `data-copy="#selector"` copies an input's value
// (the new API key), `data-copy-text="…"` copies its own text (a share link). The result is announced
// in the nearest `.copy-status` live region.

import { gettext } from "./i18n.js";
async function copy(text, field) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    // no clipboard permission (or an insecure origin): fall back to the selection
    if (!field) return false;
    field.select();
    return document.execCommand("copy");
  }
}

function announce(button, ok) {
  const status = button.closest("section")?.querySelector(".copy-status");
  const message = ok ? gettext("Copied to the clipboard.") : gettext("Could not copy: select the text and copy it yourself.");
  if (status) status.textContent = message;
}

document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-copy], [data-copy-text]");
  if (!button) return;
  const field = button.dataset.copy ? document.querySelector(button.dataset.copy) : null;
  const text = field ? field.value : button.dataset.copyText;
  announce(button, await copy(text, field));
});

// At phone width the navigation is a row that scrolls sideways: bring the current page's tab into view.
document.querySelector(".settings-nav [aria-current='page']")?.scrollIntoView({ block: "nearest", inline: "nearest" });
