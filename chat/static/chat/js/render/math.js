// Math in answers: KaTeX rendering TeX to MathML, which Chromium and Firefox draw natively, so no
// fonts, no stylesheet and no inline style attributes (the CSP forbids them). KaTeX is ~270 kB and
// most answers have no math: it is loaded on first use, and formulas show as their source until then.
import { escapeHtml } from "./escape.js";

const FALLBACK_SRC = new URL("../../../vendor/katex-0.19.1/katex.min.js", import.meta.url).href;
const OPTIONS = { output: "mathml", throwOnError: true, trust: false, strict: "ignore", maxExpand: 500, maxSize: 20 };

let katex = null;
let loading = null;
let waiting = 0; // formulas rendered as source because KaTeX was not there yet

export function mathWaiting() {
  return waiting;
}

// `tex` between its delimiters; `source` is the whole written form, shown until KaTeX is loaded
// and when the TeX does not parse.
export function renderMath(tex, source, display) {
  if (katex === null) {
    waiting += 1;
    return `<code class="math-source">${escapeHtml(source)}</code>`;
  }
  try {
    return katex.renderToString(tex, { ...OPTIONS, displayMode: display });
  } catch (error) {
    return `<code class="math-source math-error" title="${escapeHtml(String(error.message || error))}">${escapeHtml(source)}</code>`;
  }
}

function katexSrc() {
  const meta = document.querySelector('meta[name="atrium-katex-src"]');
  return meta ? meta.content : FALLBACK_SRC;
}

// Resolves once KaTeX is there (rejects when it cannot be loaded: formulas then stay as source).
export function loadMath() {
  if (katex !== null) return Promise.resolve();
  if (loading === null) {
    loading = new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = katexSrc();
      script.addEventListener("load", () => {
        katex = window.katex;
        waiting = 0;
        if (katex) resolve();
        else reject(new Error("KaTeX did not load"));
      });
      script.addEventListener("error", () => {
        loading = null;
        reject(new Error("KaTeX could not be loaded"));
      });
      document.head.append(script);
    });
  }
  return loading;
}

export function mathReady() {
  return katex !== null;
}
