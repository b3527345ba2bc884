// What the pane tells the user: the connection state ("reconnecting…") and errors worded with what
// to do about them (README, "The websocket": the error frame's codes).

import { gettext, interpolate } from "./i18n.js";

// What to do, by error code; the server's own message says what happened.
function advice(frame) {
  switch (frame.code) {
    case "balance":
      return gettext("Your balance is used up. Ask your administrator for more credits.");
    case "rate_limit":
      return frame.retry_after
        ? interpolate(gettext("Too many requests: try again in %(seconds)s seconds."), { seconds: frame.retry_after }, true)
        : gettext("Too many requests: wait a moment and try again.");
    case "connect":
    case "timeout":
    case "server":
    case "cut":
    case "upstream":
    case "protocol":
      return gettext("The model's provider did not answer properly. Try again in a moment, or choose another model.");
    case "auth":
      return gettext("The provider refused the key. If it is your own key, check it in Settings; otherwise tell your administrator.");
    case "config":
      return gettext("If this endpoint needs your own key, add it in Settings; otherwise tell your administrator.");
    case "busy":
      return gettext("Wait for the answer to finish, or stop it.");
    case "forbidden":
      return gettext("Choose another model, or ask your administrator for access.");
    default:
      return "";
  }
}

export class Notices {
  constructor({ notice, connection, settingsUrl }) {
    this.notice = notice;
    this.connection = connection;
    this.settingsUrl = settingsUrl;
    notice.querySelector(".chat-notice-close").addEventListener("click", () => this.clear());
  }

  // An error frame (or any {code, message}) as a notice.
  error(frame) {
    const text = this.notice.querySelector(".chat-notice-text");
    const what = frame.message || gettext("Something went wrong.");
    const todo = advice(frame);
    text.replaceChildren(document.createTextNode(todo ? `${what} ${todo}` : what));
    if (["auth", "config"].includes(frame.code) && this.settingsUrl) {
      const link = document.createElement("a");
      link.href = this.settingsUrl;
      link.textContent = gettext("Open settings");
      text.append(" ", link);
    }
    this.notice.dataset.code = frame.code || "";
    this.notice.hidden = false;
  }

  say(message) {
    this.error({ code: "", message });
  }

  clear() {
    this.notice.hidden = true;
    this.notice.dataset.code = "";
  }

  connectionState(state, seconds) {
    const box = this.connection;
    if (state === "open") {
      box.hidden = true;
      box.textContent = "";
    } else if (state === "reconnecting") {
      box.textContent = interpolate(
        gettext("Connection lost: reconnecting… (next try in %(seconds)s s)"), { seconds }, true);
      box.hidden = false;
    } else if (state === "signed-out") {
      box.replaceChildren(document.createTextNode(gettext("You are signed out. ")));
      const link = document.createElement("a");
      link.href = `/accounts/login/?next=${encodeURIComponent(location.pathname)}`;
      link.textContent = gettext("Sign in again");
      box.append(link);
      box.hidden = false;
    }
  }
}
