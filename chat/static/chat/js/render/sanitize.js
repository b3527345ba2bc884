// The last gate before the DOM: DOMPurify (its own instance, so no other script's hooks apply).
// No script, no event handlers, no style attributes (the CSP would refuse them anyway), links only
// to http(s), mailto and tel (relative ones too), data: URLs only on images; every link opens in a
// new tab without handing over the page (noopener) or the address (noreferrer).
import DOMPurify from "../../../vendor/dompurify-3.5.0/purify.es.mjs";

const purify = DOMPurify(window);

// Text blocks, lists and tables take their direction from their own first letters, so an English
// answer reads left to right on an Arabic page (list numbers on the left, the first column first)
// and the other way round.
const OWN_DIRECTION = new Set(["P", "LI", "OL", "UL", "TABLE", "H1", "H2", "H3", "H4", "H5", "H6", "BLOCKQUOTE"]);

purify.addHook("afterSanitizeAttributes", (node) => {
  if (node.nodeName === "A" && node.hasAttribute("href")) {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer nofollow");
  }
  if (OWN_DIRECTION.has(node.nodeName)) node.setAttribute("dir", "auto");
});

const CONFIG = {
  USE_PROFILES: { html: true, mathMl: true },
  ADD_TAGS: ["semantics", "annotation"], // KaTeX's MathML keeps the TeX source in an annotation
  FORBID_TAGS: ["style", "form", "textarea", "select", "option", "dialog"],
  FORBID_ATTR: ["style", "id", "name", "srcset", "action", "formaction"],
  ALLOWED_URI_REGEXP: /^(?:(?:https?|mailto|tel):|[^a-z]|[a-z+.-]+(?:[^a-z+.\-:]|$))/i,
  RETURN_DOM_FRAGMENT: true,
};

export function sanitize(html) {
  return purify.sanitize(html, CONFIG);
}
