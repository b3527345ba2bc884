// The pages' strings in the reader's language, from Django's JavaScript catalogue (/jsi18n/, loaded
// before the modules). Call gettext("a literal") so `make messages` finds the string; without the
// catalogue the English text is shown.
export const gettext = (text) => (window.gettext ? window.gettext(text) : text);
export const ngettext = (one, many, count) =>
  (window.ngettext ? window.ngettext(one, many, count) : (count === 1 ? one : many));

// interpolate("%s of %s", [1, 2]) or interpolate("%(done)s of %(all)s", {done: 1, all: 2}, true)
export function interpolate(format, values, named = false) {
  if (window.interpolate) return window.interpolate(format, values, named);
  if (named) return format.replace(/%\((\w+)\)s/g, (_, key) => String(values[key]));
  const queue = [...values];
  return format.replace(/%s/g, () => String(queue.shift()));
}
