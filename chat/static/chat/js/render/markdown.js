// Markdown → HTML for answers: GitHub-flavoured Markdown (marked), code highlighted (highlight.js),
// math ($…$, $$…$$, \(…\), \[…\]) as MathML. Raw HTML the model writes is shown as text here, before
// the sanitizer ever sees it. `blocks(text)` splits an answer into top-level blocks that render
// on their own, so a streaming answer re-renders only the block that grows.
import { Marked, Renderer } from "../../../vendor/marked-18.3.0/marked.esm.js";
import hljs from "../../../vendor/highlight.js-11.12.0/highlight.min.js";
import { gettext } from "../i18n.js";
import { escapeHtml } from "./escape.js";
import { renderMath } from "./math.js";

const AUTO_DETECT_LIMIT = 20000; // characters; guessing the language costs a pass per language
const CACHE_LIMIT = 400;
const highlightCache = new Map(); // language, finished, code → {html, label}; finished blocks never re-highlight

function remember(key, value) {
  if (highlightCache.size >= CACHE_LIMIT) highlightCache.delete(highlightCache.keys().next().value);
  highlightCache.set(key, value);
  return value;
}

function highlight(code, language, finished) {
  const key = `${language}\u0000${finished}\u0000${code}`;
  const cached = highlightCache.get(key);
  if (cached) return cached;
  if (language && hljs.getLanguage(language)) {
    const html = hljs.highlight(code, { language, ignoreIllegals: true }).value;
    return remember(key, { html, label: language });
  }
  // An unlabelled block is guessed once it is complete (guessing while it streams would be slow and
  // its colours would change as it grows).
  if (!language && finished && code.length <= AUTO_DETECT_LIMIT) {
    const guess = hljs.highlightAuto(code);
    if (guess.language && guess.relevance >= 5) return remember(key, { html: guess.value, label: guess.language });
  }
  return remember(key, { html: escapeHtml(code), label: language });
}

const CLOSING_FENCE = /\n {0,3}(`{3,}|~{3,})[ \t]*\n*$/;

function codeBlock(token) {
  const language = (token.lang || "").trim().split(/\s+/)[0].toLowerCase();
  const fenced = /^ {0,3}(`{3}|~{3})/.test(token.raw);
  const finished = !fenced || CLOSING_FENCE.test(token.raw);
  const { html, label } = highlight(token.text, language, finished);
  const languageClass = /^[\w+#.-]+$/.test(label) ? ` language-${label}` : "";
  return (
    `<div class="code-block"><div class="code-head"><span class="code-lang">${escapeHtml(label)}</span>` +
    `<span class="code-status visually-hidden" aria-live="polite"></span>` +
    `<button type="button" class="code-copy">${escapeHtml(gettext("Copy"))}</button></div>` +
    `<pre><code class="hljs${languageClass}">${html}</code></pre></div>`
  );
}

const base = new Renderer();

const renderer = {
  code: codeBlock,
  // Raw HTML is text: a tag the model writes is shown, never parsed. Only a line break inside a
  // paragraph or table cell (models write `<br>` there often) is taken as one.
  html(token) {
    if (!token.block && /^<br\s*\/?>$/i.test(token.text)) return "<br>";
    const text = escapeHtml(token.text);
    return token.block ? `<p class="raw-html">${text.replace(/\n+$/, "")}</p>\n` : text;
  },
  table(token) {
    return `<div class="table-wrap" tabindex="0">${base.table.call(this, token)}</div>\n`;
  },
  // The CSP loads images from this site and data: only; anything else becomes a link to it.
  image({ href, title, text }) {
    if (/^data:image\/[a-z0-9.+-]+[;,]/i.test(href || "")) {
      const titled = title ? ` title="${escapeHtml(title)}"` : "";
      return `<img src="${escapeHtml(href)}" alt="${escapeHtml(text)}"${titled}>`;
    }
    return `<a href="${escapeHtml(href || "")}" class="image-link">${escapeHtml(text || href || "")}</a>`;
  },
};

// Math. Inline `$…$` follows Pandoc's rule so prices are not formulas: no space inside either
// delimiter, and no digit right after the closing one ("$5 and $10" stays text).
const INLINE_MATH = [
  [/^\$\$([^$]+?)\$\$/, true],
  [/^\\\[([\s\S]+?)\\\]/, true],
  [/^\\\(([\s\S]+?)\\\)/, false],
  [/^\$(?![\s$])((?:\\[\s\S]|[^\\$\n])+?)(?<!\s)\$(?!\d)/, false],
];
const BLOCK_MATH = [/^ {0,3}\$\$([\s\S]+?)\$\$[ \t]*(?:\n+|$)/, /^ {0,3}\\\[([\s\S]+?)\\\][ \t]*(?:\n+|$)/];

const blockMath = {
  name: "blockMath",
  level: "block",
  start(src) {
    const match = src.match(/^ {0,3}(\$\$|\\\[)/m);
    return match ? match.index : undefined;
  },
  tokenizer(src) {
    for (const pattern of BLOCK_MATH) {
      const match = pattern.exec(src);
      if (match) return { type: "blockMath", raw: match[0], text: match[1].trim(), source: match[0].trim() };
    }
    return undefined;
  },
  renderer(token) {
    return `<div class="math-block">${renderMath(token.text, token.source, true)}</div>\n`;
  },
};

const inlineMath = {
  name: "inlineMath",
  level: "inline",
  start(src) {
    const index = src.search(/\$|\\[[(]/);
    return index < 0 ? undefined : index;
  },
  tokenizer(src) {
    for (const [pattern, display] of INLINE_MATH) {
      const match = pattern.exec(src);
      if (match) return { type: "inlineMath", raw: match[0], text: match[1].trim(), display };
    }
    return undefined;
  },
  renderer(token) {
    return renderMath(token.text, token.raw, token.display);
  },
};

const marked = new Marked({ gfm: true, breaks: true, renderer, extensions: [blockMath, inlineMath] });

// The answer's top-level blocks: {key, tokens}. Equal keys render to equal HTML.
export function blocks(text) {
  const tokens = marked.lexer(text);
  const links = Object.keys(tokens.links || {}).length ? JSON.stringify(tokens.links) : "";
  const result = [];
  for (const token of tokens) {
    if (token.type === "space") continue;
    result.push({ key: `${token.type}\u0000${token.raw}\u0000${links}`, token });
  }
  return result;
}

export function blockHtml(block) {
  return marked.parser([block.token]);
}
