// Which group of the sidebar a conversation belongs to, by the reader's local calendar day:
// Today, Yesterday, Previous 7 days, Previous 30 days, then one group per month.
import { gettext } from "./sidebar-util.js";

const DAY = 86400000;

// Days since an epoch, counted on the local calendar (a DST change does not shift a day).
export function dayNumber(date) {
  return Math.round(Date.UTC(date.getFullYear(), date.getMonth(), date.getDate()) / DAY);
}

function monthLabel(date) {
  const lang = document.documentElement.lang || undefined;
  return new Intl.DateTimeFormat(lang, { month: "long", year: "numeric" }).format(date);
}

// {key, order, label}: groups show in ascending `order`.
export function groupOf(updated, now = new Date()) {
  const days = dayNumber(now) - dayNumber(updated);
  if (days <= 0) return { key: "today", order: 0, label: gettext("Today") };
  if (days === 1) return { key: "yesterday", order: 1, label: gettext("Yesterday") };
  if (days <= 7) return { key: "week", order: 2, label: gettext("Previous 7 days") };
  if (days <= 30) return { key: "month", order: 3, label: gettext("Previous 30 days") };
  const monthsAgo = (now.getFullYear() - updated.getFullYear()) * 12 + now.getMonth() - updated.getMonth();
  return {
    key: `${updated.getFullYear()}-${updated.getMonth() + 1}`, order: 4 + monthsAgo, label: monthLabel(updated),
  };
}
