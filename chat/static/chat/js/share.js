// The share page: each message arrives as escaped text (readable without JavaScript); answers are
// then rendered like the chat's, user messages stay plain text.
import { renderMarkdown, renderPlain } from "./render.js";

for (const element of document.querySelectorAll("[data-render]")) {
  const text = element.textContent;
  if (element.dataset.render === "markdown") renderMarkdown(element, text);
  else renderPlain(element, text);
}
