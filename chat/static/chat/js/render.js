// Placeholder renderer until RENDER's render.js lands (the lead replaces this file at merge).
// Same exports: renderMarkdown(element, text) and renderPlain(element, text); both show the text
// as text (paragraphs at blank lines, line breaks kept), never as HTML.

function paragraphs(element, text) {
  const parts = String(text || "").split(/\n{2,}/);
  const nodes = parts.filter((part) => part.length > 0).map((part) => {
    const p = document.createElement("p");
    const lines = part.split("\n");
    lines.forEach((line, index) => {
      if (index > 0) p.append(document.createElement("br"));
      p.append(document.createTextNode(line));
    });
    return p;
  });
  element.replaceChildren(...nodes);
}

export function renderMarkdown(element, text) {
  paragraphs(element, text);
}

export function renderPlain(element, text) {
  paragraphs(element, text);
}
