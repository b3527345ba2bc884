// Shared by the sidebar's modules: translated strings (Django's JavaScript catalogue, /jsi18n/),
// and JSON requests to the REST API with the session's CSRF token.

export { gettext, interpolate, ngettext } from "./i18n.js";

function csrfToken() {
  const pair = document.cookie.split("; ").find((c) => c.startsWith("csrftoken="));
  return pair ? decodeURIComponent(pair.slice("csrftoken=".length)) : "";
}

export class ApiError extends Error {}

// `method` `url` with an optional JSON body; resolves to the parsed answer (null for 204), rejects
// with an ApiError carrying the API's own message ({"error": {"message"}}).
export async function api(method, url, body) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (method !== "GET") init.headers["X-CSRFToken"] = csrfToken();
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch {
    throw new ApiError(gettext("The server could not be reached. Check your connection and try again."));
  }
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    throw new ApiError(data?.error?.message || interpolate(gettext("The request failed (HTTP %s)."), [response.status]));
  }
  return data;
}

export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== "") search.set(key, String(value));
  }
  return search.toString();
}
