const ENTITIES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

export function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ENTITIES[c]);
}

// Django's JavaScript catalogue when the page loaded it, else the English text.
export function t(text) {
  return typeof window.gettext === "function" ? window.gettext(text) : text;
}
