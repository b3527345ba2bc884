// The pages' strings in the reader's language, from Django's JavaScript catalogue (/jsi18n/, loaded
// before the modules). Call gettext("a literal") so `make messages` finds the string; without the
// catalogue the English text is shown.
export const gettext = (text) => (window.gettext ? window.gettext(text) : text);
export const ngettext = (one, many, count) =>
  (window.ngettext ? window.ngettext(one, many, count) : (count === 1 ? one : many));
export const interpolate = (format, values, named = false) =>
  (window.interpolate ? window.interpolate(format, values, named) : format);
