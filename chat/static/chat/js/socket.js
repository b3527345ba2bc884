// The page's one chat websocket (README, "The websocket"): connects, reconnects with backoff after a
// lost connection, and hands every frame to `onFrame`. `onState(state, detail)` reports
// "open", "reconnecting" (detail: seconds until the next try) and "signed-out" (code 4401).

const BACKOFF = [1, 2, 4, 8, 15, 30]; // seconds between tries, the last one repeated
const CLOSE_UNAUTHENTICATED = 4401;

export class ChatSocket {
  constructor({ onFrame, onState, url }) {
    this.onFrame = onFrame;
    this.onState = onState;
    this.url = url || `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/chat/`;
    this.ws = null;
    this.tries = 0;
    this.timer = null;
    this.closedForGood = false;
    window.addEventListener("online", () => this.retryNow());
  }

  get open() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  connect() {
    clearTimeout(this.timer);
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.addEventListener("open", () => {
      this.tries = 0;
      this.onState("open");
    });
    ws.addEventListener("message", (event) => {
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return; // not a frame of this protocol
      }
      this.onFrame(frame);
    });
    ws.addEventListener("close", (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (event.code === CLOSE_UNAUTHENTICATED) {
        this.closedForGood = true;
        this.onState("signed-out");
        return;
      }
      this.scheduleRetry();
    });
  }

  scheduleRetry() {
    if (this.closedForGood) return;
    const wait = BACKOFF[Math.min(this.tries, BACKOFF.length - 1)];
    this.tries += 1;
    this.onState("reconnecting", wait);
    this.timer = setTimeout(() => this.connect(), wait * 1000);
  }

  retryNow() {
    if (this.ws === null && !this.closedForGood) this.connect();
  }

  // Sends a frame; false when the socket is not open (the caller keeps what the user wrote).
  send(frame) {
    if (!this.open) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }
}
