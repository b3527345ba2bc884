// At phone width the sidebar is an off-canvas drawer: a button added to the page's header opens
// it (aria-expanded), Esc or the backdrop closes it.
const PHONE = window.matchMedia("(max-width: 768px)");

export class Drawer {
  constructor(panel) {
    this.panel = panel;
    this.backdrop = panel.parentElement.querySelector(".sb-backdrop");
    const header = document.querySelector(".appbar");
    if (!header) return;
    this.toggle = panel.querySelector("#sb-toggle-template").content.firstElementChild.cloneNode(true);
    header.prepend(this.toggle);
    this.toggle.addEventListener("click", () => (this.isOpen() ? this.close() : this.open()));
    this.backdrop.addEventListener("click", () => this.close());
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && this.isOpen() && !document.querySelector("dialog[open]")) this.close();
    });
    PHONE.addEventListener("change", () => this.close());
  }

  isOpen() {
    return this.panel.classList.contains("open");
  }

  open() {
    this.panel.classList.add("open");
    this.backdrop.hidden = false;
    this.toggle.setAttribute("aria-expanded", "true");
    this.panel.querySelector("#sb-search-input").focus();
  }

  close() {
    if (!this.isOpen()) return;
    const inside = this.panel.contains(document.activeElement);
    this.panel.classList.remove("open");
    this.backdrop.hidden = true;
    this.toggle.setAttribute("aria-expanded", "false");
    if (inside) this.toggle.focus();
  }
}
