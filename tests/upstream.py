"""A loopback LLM provider for tests: a real HTTP/1.1 server speaking the three wire protocols.

Built on the standard library's `ThreadingHTTPServer`, in its own thread: it needs no event loop
from the test, so sync tests, async tests and a separate daphne process can all call it, and a
slow or hanging reply (timeouts, stop, reload mid-stream) never blocks the caller's loop. Streams use
chunked transfer encoding like the real providers, so "cut the connection mid-stream" is a real
incomplete HTTP message, not a clean end of file.

Which protocol answers is decided by the path, as the providers lay them out:
  POST …/messages          Anthropic Messages (SSE events with `event:` names, ping, cache usage);
                           also Vertex AI's …/models/{model}:streamRawPredict and :rawPredict
  POST …/responses         OpenAI Responses (typed events, response.completed usage)
  POST anything else       OpenAI Chat Completions (`data:` chunks, [DONE], usage with include_usage)
  GET  …/models            OpenAI model list

Script replies per test:

    upstream.reply(text="Hi", reasoning="hmm", usage=Usage(input_tokens=3, output_tokens=2))
    upstream.reply(status=429, retry_after="7")
    upstream.reply(text="partial answer", cut_after=2, chunk_delay=0.05)
    upstream.reply(text="partial", error_after=1)            # error event inside a 200 stream
    upstream.reply(text="x", malformed_after=1)              # a chunk that isn't JSON (stream goes on)
    upstream.reply(delay=5)                                  # nothing for 5 s (read timeout)
    upstream.reply(text="a b c", stall_after=2, stall=5)     # silent mid-stream (read timeout)
    upstream.reply(text="a b c", stall_after=2, release=gate)  # paused until gate.set() (threading.Event)
    upstream.reply(text="x", hang_up="close")                # then closes the kept-alive connection
    upstream.models(["m1", "m2"]) / upstream.models(status=500)

`Upstream(tls=context)` speaks HTTPS with the context's certificate (tests/certs.py makes one).

A streamed answer stops at the request's max_tokens (max_completion_tokens, max_output_tokens) when
its usage says it is longer: one piece of text per token, finish reason "length".
Queued replies answer the next completion requests in order (a reply with `model=` only answers
requests for that model); with the queue empty, `upstream.default` answers. Every request is
recorded in `upstream.requests` (method, path, query, lower-cased headers, JSON body).

Tool exchanges in a request are checked as each provider checks them, and a broken one is refused
with 400 in the provider's words (the queued reply then answers the next request): Chat
Completions' tool messages answer the calls of the assistant message just before them, all of
them; Anthropic's `tool_result` blocks open the user turn after the `tool_use` blocks they answer,
all of them; a Responses `function_call_output` answers an earlier `function_call`.
"""
from __future__ import annotations

import json
import re
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from endpoints.adapters.types import Usage

DEFAULT_USAGE = Usage(input_tokens=10, output_tokens=5)


@dataclass
class Script:
    """One scripted reply. Usage is given provider-neutrally (disjoint counts, as `Usage`) and
    rendered in each protocol's own convention (OpenAI: cached ⊂ prompt; Anthropic: disjoint)."""

    text: str = "Hello from the upstream."
    reasoning: str = ""
    reasoning_key: str = "reasoning_content"  # Chat Completions: the delta key carrying reasoning
    tool_calls: list[dict[str, str]] = field(default_factory=list)  # [{"id", "name", "arguments"}]
    usage: Usage | None = DEFAULT_USAGE
    finish: str | None = None  # protocol default: stop / end_turn / completed; "length" = cut by max tokens
    status: int = 200
    body: Any = None  # error body (dict → JSON, str → raw); None: the provider's usual error shape
    headers: dict[str, str] = field(default_factory=dict)
    retry_after: str | None = None
    delay: float = 0.0  # seconds before the response starts
    chunk_delay: float = 0.0  # seconds between stream events
    pieces: list[str] | None = None  # how the text is split into deltas (default: word by word)
    cut_after: int | None = None  # close the connection after N deltas (text, reasoning, tool fragments)
    error_after: int | None = None  # send the provider's in-stream error event after N deltas
    error_message: str = "The server had an error while processing your request."
    error_type: str | None = None  # provider error type (default: server_error / overloaded_error)
    responses_failure: str = "error"  # Responses in-stream failure: "error" event or "response.failed"
    malformed_after: int | None = None  # send a chunk that is not JSON after N deltas
    stall_after: int | None = None  # go silent for `stall` seconds after N deltas (read timeout mid-stream)
    stall: float = 30.0
    # With stall_after: instead of `stall` seconds, wait until this event is set (a test releases
    # the rest of the answer when it has seen the first part), or the server stops.
    release: threading.Event | None = None
    comments: bool = False  # SSE comment lines (": keep-alive") between events
    multiline: bool = False  # every data payload split over several `data:` lines
    model: str | None = None  # only answer requests for this model
    # After answering, hang up the kept-alive connection a moment later, without having said so (as
    # a server's idle timeout does): "close" just closes it, "408" first sends an unasked 408.
    hang_up: str | None = None


@dataclass
class ModelsScript:
    ids: list[str] = field(default_factory=lambda: ["upstream-model-a", "upstream-model-b"])
    status: int = 200
    body: Any = None
    delay: float = 0.0


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # names lower-cased
    json: Any
    raw: bytes = b""

    @property
    def model(self) -> str | None:
        return self.json.get("model") if isinstance(self.json, dict) else None


class _Cut(Exception):
    """The script asked to drop the connection here."""


def _split(text: str) -> list[str]:
    return re.findall(r"\s*\S+\s*|\s+", text) if text else []


def _halves(text: str) -> list[str]:
    middle = len(text) // 2
    return [part for part in (text[:middle], text[middle:]) if part]


class Upstream:
    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        """`tls`: a server context (certificate and key) to speak HTTPS, like a real provider."""
        self.default = Script()
        self.models_default = ModelsScript()
        self.requests: list[Recorded] = []
        self.disconnects = 0  # answers the client hung up on before they were complete
        self.connections = 0  # TCP connections accepted (a pooling client reuses them)
        self._queue: list[Script] = []
        self._models_queue: list[ModelsScript] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self.tls = tls
        if tls is not None:  # (the TLS handshake happens as a connection is accepted)
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="upstream", daemon=True
        )
        self._held: list[socket.socket] = []

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> Upstream:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        for sock in self._held:
            sock.close()

    def __enter__(self) -> Upstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{'https' if self.tls else 'http'}://{host}:{port}"

    @property
    def base_url(self) -> str:
        """An OpenAI-style base URL (…/v1) on this server."""
        return self.url + "/v1"

    # --- scripting -------------------------------------------------------------------------
    def reply(self, **fields: Any) -> Script:
        script = Script(**fields)
        with self._lock:
            self._queue.append(script)
        return script

    def models(self, ids: list[str] | None = None, **fields: Any) -> None:
        script = ModelsScript(**fields) if ids is None else ModelsScript(ids=list(ids), **fields)
        with self._lock:
            self._models_queue.append(script)

    def set_default(self, **fields: Any) -> None:
        self.default = replace(Script(), **fields)

    def reset(self) -> None:
        with self._lock:
            self._queue.clear()
            self._models_queue.clear()
            self.requests.clear()
        self.default = Script()

    @property
    def last(self) -> Recorded:
        return self.requests[-1]

    def completions(self) -> list[Recorded]:
        return [r for r in self.requests if r.method == "POST"]

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> list[Recorded]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return list(self.requests)

    # --- addresses that fail before HTTP ---------------------------------------------------
    def refused_url(self) -> str:
        """A loopback URL where nothing listens: connection refused."""
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        return f"http://127.0.0.1:{port}/v1"

    def unreachable_url(self) -> str:
        """A loopback URL whose TCP handshake never completes (a full listen backlog drops the
        SYN), so the client's connect timeout fires."""
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        self._held.append(listener)
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            try:
                filler.connect(("127.0.0.1", port))
            except BlockingIOError:
                pass
            self._held.append(filler)
        time.sleep(0.05)
        return f"http://127.0.0.1:{port}/v1"

    # --- used by the handler ---------------------------------------------------------------
    def _record(self, recorded: Recorded) -> None:
        with self._lock:
            self.requests.append(recorded)

    def _next_script(self, model: str | None) -> Script:
        with self._lock:
            for position, script in enumerate(self._queue):
                if script.model is None or script.model == model:
                    return self._queue.pop(position)
        return self.default

    def _next_models(self) -> ModelsScript:
        with self._lock:
            if self._models_queue:
                return self._models_queue.pop(0)
        return self.models_default

    def _disconnected(self) -> None:
        with self._lock:
            self.disconnects += 1

    def wait_for_disconnects(self, count: int = 1, timeout: float = 5.0) -> int:
        """Wait until `count` clients hung up mid-answer (e.g. after a stop); returns how many did."""
        deadline = time.monotonic() + timeout
        while self.disconnects < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.disconnects

    def _hold(self, release: threading.Event) -> None:
        while not release.wait(0.05) and not self._stopping.is_set():
            pass

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)


class _Server(ThreadingHTTPServer):
    # socketserver's default listen backlog is 5: with more clients connecting at once the kernel
    # drops handshakes, and clients see connections reset before any answer (ReadError) or a
    # one-second SYN retry. Real providers' servers accept far more.
    request_queue_size = 128


def _handler_for(upstream: Upstream) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        pass

    Handler.upstream = upstream
    return Handler


class _Handler(BaseHTTPRequestHandler):
    upstream: Upstream
    protocol_version = "HTTP/1.1"
    server_version = "upstream-test/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def handle(self) -> None:
        with self.upstream._lock:
            self.upstream.connections += 1
        try:
            super().handle()
        except (ConnectionError, TimeoutError):
            pass  # the client went away (stop, timeout, closed keep-alive connection)

    # --- request entry points --------------------------------------------------------------
    def do_GET(self) -> None:
        recorded = self._read_request()
        if recorded.path.endswith("/models"):
            self._serve_models()
        else:
            error = {"message": f"Unknown path {recorded.path}", "type": "invalid_request_error"}
            self._send_json(404, {"error": error})

    def do_POST(self) -> None:
        recorded = self._read_request()
        body = recorded.json if isinstance(recorded.json, dict) else {}
        path = recorded.path
        anthropic = path.endswith(("/messages", ":streamRawPredict", ":rawPredict"))  # Vertex AI: model:verb
        protocol = "anthropic" if anthropic else "responses" if path.endswith("/responses") else "chat"
        problem = _TOOL_CHECKS[protocol](body)
        if problem:  # refused as the provider refuses it; the scripted reply waits for the next request
            self._send_json(400, _invalid_request_body(protocol, problem))
            return
        script = self.upstream._next_script(body.get("model"))
        self.upstream._sleep(script.delay)
        try:
            if script.status >= 400:
                self._send_error(protocol, script, body)
            elif body.get("stream"):
                self._stream(protocol, script, body)
            else:
                self._send_json(200, _FULL[protocol](script, body), script.headers)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
            self.upstream._disconnected()
            return
        if script.hang_up and not self.close_connection:
            self.upstream._sleep(0.05)
            if script.hang_up == "408":
                self.wfile.write(b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                self.wfile.flush()
            self.close_connection = True

    def _read_request(self) -> Recorded:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        recorded = Recorded(
            method=self.command,
            path=parts.path,
            query=dict(parse_qsl(parts.query, keep_blank_values=True)),
            headers={name.lower(): value for name, value in self.headers.items()},
            json=parsed,
            raw=raw,
        )
        self.upstream._record(recorded)
        return recorded

    # --- plain responses -------------------------------------------------------------------
    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _serve_models(self) -> None:
        script = self.upstream._next_models()
        self.upstream._sleep(script.delay)
        if script.status >= 400:
            body = script.body
            if body is None:
                body = {"error": {"message": "models unavailable", "type": "server_error"}}
            self._send_json(script.status, body)
            return
        if script.body is not None:
            self._send_json(200, script.body)  # a scripted (possibly malformed) answer
            return
        self._send_json(200, {
            "object": "list",
            "data": [
                {"id": model, "object": "model", "created": 1700000000, "owned_by": "upstream"} for model in script.ids
            ],
        })

    def _send_error(self, protocol: str, script: Script, body: dict[str, Any]) -> None:
        headers = dict(script.headers)
        if script.retry_after is not None:
            headers["retry-after"] = script.retry_after
        payload = script.body if script.body is not None else _error_body(protocol, script.status, body.get("model"))
        self._send_json(script.status, payload, headers)

    # --- streams ---------------------------------------------------------------------------
    def _stream(self, protocol: str, script: Script, body: dict[str, Any]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        for name, value in script.headers.items():
            self.send_header(name, value)
        self.end_headers()
        script = _within_max_tokens(script, body)
        writer = _EventWriter(self, script)
        try:
            _STREAMS[protocol](writer, script, body)
        except _Cut:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


def _within_max_tokens(script: Script, body: dict[str, Any]) -> Script:
    """As a real provider does, a streamed answer stops at the request's output limit (here one
    piece of the text per token), reporting that many output tokens and finish reason "length"."""
    limits = [body.get(name) for name in ("max_tokens", "max_completion_tokens", "max_output_tokens")]
    limit = next((value for value in limits if isinstance(value, int)), None)
    if limit is None or script.usage is None or script.usage.output_tokens <= limit:
        return script
    pieces = (script.pieces if script.pieces is not None else _split(script.text))[:limit]
    return replace(script, pieces=pieces, text="".join(pieces), usage=replace(script.usage, output_tokens=limit),
                   finish="length")


class _EventWriter:
    """Writes SSE events as HTTP chunks and applies the script's faults at the right delta."""

    def __init__(self, handler: _Handler, script: Script):
        self.handler = handler
        self.script = script
        self.deltas = 0
        self.malformed_sent = False
        self.stalled = False

    def _write(self, text: str) -> None:
        data = text.encode()
        self.handler.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.handler.wfile.flush()

    def event(self, payload: Any, name: str | None = None) -> None:
        script = self.script
        if script.comments:
            self._write(": keep-alive\n\n")
        data = payload if isinstance(payload, str) else json.dumps(payload)
        if script.multiline and data.startswith("{"):
            # break between JSON tokens: the receiver joins data lines with "\n" (valid JSON whitespace)
            lines = data.replace(", ", ",\n").split("\n")
        else:
            lines = [data]
        head = f"event: {name}\n" if name else ""
        self._write(head + "".join(f"data: {line}\n" for line in lines) + "\n")
        self.handler.upstream._sleep(script.chunk_delay)

    def delta(self, payload: Any, name: str | None = None) -> None:
        """A content event; faults scheduled 'after N deltas' fire before the (N+1)th."""
        self.check_faults(name)
        self.event(payload, name)
        self.deltas += 1

    def check_faults(self, name: str | None = None) -> None:
        """Fire the fault due after `self.deltas` deltas; also called once after the last delta."""
        script = self.script
        if script.stall_after is not None and self.deltas >= script.stall_after and not self.stalled:
            self.stalled = True
            if script.release is not None:
                self.handler.upstream._hold(script.release)
            else:
                self.handler.upstream._sleep(script.stall)
        if script.cut_after is not None and self.deltas >= script.cut_after:
            raise _Cut
        if script.malformed_after is not None and self.deltas >= script.malformed_after and not self.malformed_sent:
            # a truncated JSON object in a well-framed event; the stream then goes on normally
            self.malformed_sent = True
            truncated = 'data: {"choices": [{"delta": {"content": "unterminated\n\n'
            self._write((f"event: {name}\n" if name else "") + truncated)
        if script.error_after is not None and self.deltas >= script.error_after:
            raise _StreamFailed

    check_end = check_faults


class _StreamFailed(Exception):
    """Switch to the protocol's in-stream error event."""


# --- error bodies as each provider shapes them --------------------------------------------------

_STATUS_TEXT = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "Incorrect API key provided."),
    403: ("permission_error", "You do not have access to this resource."),
    404: ("not_found_error", "The model `{model}` does not exist or you do not have access to it."),
    429: ("rate_limit_error", "Rate limit reached for requests."),
    500: ("api_error", "The server had an error while processing your request."),
    502: ("api_error", "Bad gateway."),
    503: ("overloaded_error", "The engine is currently overloaded, please try again later."),
    529: ("overloaded_error", "Overloaded"),
}


def _error_body(protocol: str, status: int, model: str | None) -> dict[str, Any]:
    kind, message = _STATUS_TEXT.get(status, ("api_error", f"HTTP {status}"))
    message = message.format(model=model)
    if protocol == "anthropic":
        return {"type": "error", "error": {"type": kind, "message": message}}
    openai_types = {"authentication_error": "invalid_request_error", "not_found_error": "invalid_request_error",
                    "rate_limit_error": "requests", "permission_error": "invalid_request_error"}
    openai_type = openai_types.get(kind, "server_error")
    code = {401: "invalid_api_key", 404: "model_not_found", 429: "rate_limit_exceeded"}.get(status)
    return {"error": {"message": message, "type": openai_type, "param": None, "code": code}}


def _invalid_request_body(protocol: str, message: str) -> dict[str, Any]:
    if protocol == "anthropic":
        return {"type": "error", "error": {"type": "invalid_request_error", "message": message}}
    param = "input" if protocol == "responses" else "messages"
    return {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": None}}


# --- tool exchanges, checked as each provider checks them (400 with its words) --------------------

def _chat_tool_problem(body: dict[str, Any]) -> str | None:
    """Chat Completions: tool messages answer the tool calls of the assistant message just before
    them (only other tool messages between), and every call is answered."""
    pending: set[str] | None = None
    for message in body.get("messages") or []:
        role = message.get("role") if isinstance(message, dict) else None
        if role == "tool":
            if pending is None or message.get("tool_call_id") not in pending:
                return ("Invalid parameter: messages with role 'tool' must be a response to a preceeding message "
                        "with 'tool_calls'.")
            pending.discard(message["tool_call_id"])
            continue
        if pending:
            break
        calls = message.get("tool_calls") if role == "assistant" else None
        pending = {str(c.get("id")) for c in calls} if calls else None
    if pending:
        missing = ", ".join(sorted(pending))
        return ("An assistant message with 'tool_calls' must be followed by tool messages responding to each "
                f"'tool_call_id'. The following tool_call_ids did not have response messages: {missing}")
    return None


def _anthropic_tool_problem(body: dict[str, Any]) -> str | None:
    """Messages: every `tool_use` of an assistant turn is answered by a `tool_result` at the start
    of the next (user) turn, and a `tool_result` answers a `tool_use` of the turn before."""
    pending: set[str] = set()
    for position, message in enumerate(body.get("messages") or []):
        content = message.get("content") if isinstance(message, dict) else None
        blocks = [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []
        results = [str(b.get("tool_use_id")) for b in blocks if b.get("type") == "tool_result"]
        if pending - set(results):
            return (f"messages.{position - 1}: `tool_use` ids were found without `tool_result` blocks immediately "
                    f"after: {', '.join(sorted(pending - set(results)))}. Each `tool_use` block must have a "
                    "corresponding `tool_result` block in the next message.")
        for index, result in enumerate(results):
            if result not in pending:
                return (f"messages.{position}.content.{index}: unexpected `tool_use_id` found in `tool_result` "
                        f"blocks: {result}. Each `tool_result` block must have a corresponding `tool_use` block in "
                        "the previous message.")
        if any(b.get("type") != "tool_result" for b in blocks[:len(results)]):
            return f"messages.{position}: `tool_result` blocks must come first in the user message's content."
        is_assistant = message.get("role") == "assistant"
        pending = {str(b.get("id")) for b in blocks if b.get("type") == "tool_use"} if is_assistant else set()
    return None


def _responses_tool_problem(body: dict[str, Any]) -> str | None:
    """Responses: a `function_call_output` item answers a `function_call` item earlier in the input."""
    called: set[str] = set()
    for item in body.get("input") or []:
        if not isinstance(item, dict):
            continue
        if item.get("type") == "function_call":
            called.add(str(item.get("call_id")))
        elif item.get("type") == "function_call_output" and item.get("call_id") not in called:
            return f"No tool call found for function call output with call_id {item.get('call_id')}."
    return None


_TOOL_CHECKS = {"chat": _chat_tool_problem, "anthropic": _anthropic_tool_problem, "responses": _responses_tool_problem}


# --- OpenAI Chat Completions ----------------------------------------------------------------------

def _chat_usage(usage: Usage) -> dict[str, Any]:
    prompt = usage.input_tokens + usage.cache_read_tokens + usage.cache_write_tokens
    return {
        "prompt_tokens": prompt,
        "completion_tokens": usage.output_tokens,
        "total_tokens": prompt + usage.output_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cache_read_tokens, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens, "audio_tokens": 0},
    }


def _chat_finish(script: Script) -> str:
    return script.finish or ("tool_calls" if script.tool_calls else "stop")


def _chat_stream(writer: _EventWriter, script: Script, body: dict[str, Any]) -> None:
    ident, created, model = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time()), body.get("model")
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        payload = {
            "id": ident, "object": "chat.completion.chunk", "created": created, "model": model,
            "system_fingerprint": "fp_upstream",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if include_usage:
            payload["usage"] = None
        return payload

    try:
        writer.event(chunk({"role": "assistant", "content": "", "refusal": None}))
        for piece in _split(script.reasoning):
            writer.delta(chunk({script.reasoning_key: piece}))
        for piece in script.pieces if script.pieces is not None else _split(script.text):
            writer.delta(chunk({"content": piece}))
        for index, call in enumerate(script.tool_calls):
            writer.delta(chunk({"tool_calls": [{
                "index": index, "id": call["id"], "type": "function",
                "function": {"name": call["name"], "arguments": ""},
            }]}))
            for fragment in _halves(call.get("arguments", "")):
                writer.delta(chunk({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]}))
        writer.check_end()
    except _StreamFailed:
        writer.event({"error": {"message": script.error_message, "type": script.error_type or "server_error",
                                "param": None, "code": None}})
        return
    writer.event(chunk({}, _chat_finish(script)))
    if include_usage and script.usage is not None:
        writer.event({"id": ident, "object": "chat.completion.chunk", "created": created, "model": model,
                      "system_fingerprint": "fp_upstream", "choices": [], "usage": _chat_usage(script.usage)})
    writer.event("[DONE]")


def _chat_full(script: Script, body: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": script.text, "refusal": None}
    if script.reasoning:
        message[script.reasoning_key] = script.reasoning
    if script.tool_calls:
        message["tool_calls"] = [
            {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c.get("arguments", "")}}
            for c in script.tool_calls
        ]
    payload: dict[str, Any] = {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion", "created": int(time.time()),
        "model": body.get("model"),
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": _chat_finish(script)}],
    }
    if script.usage is not None:
        payload["usage"] = _chat_usage(script.usage)
    return payload


# --- Anthropic Messages ----------------------------------------------------------------------------

def _anthropic_stop(script: Script) -> str:
    if script.finish == "length":
        return "max_tokens"
    return script.finish or ("tool_use" if script.tool_calls else "end_turn")


def _anthropic_usage(usage: Usage | None, output: int) -> dict[str, Any]:
    usage = usage or Usage()
    return {
        "input_tokens": usage.input_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cache_read_tokens,
        "output_tokens": output,
    }


def _anthropic_stream(writer: _EventWriter, script: Script, body: dict[str, Any]) -> None:
    message_id = f"msg_{uuid.uuid4().hex[:24]}"
    writer.event({"type": "message_start", "message": {
        "id": message_id, "type": "message", "role": "assistant", "content": [], "model": body.get("model"),
        "stop_reason": None, "stop_sequence": None, "usage": _anthropic_usage(script.usage, 1),
    }}, "message_start")
    writer.event({"type": "ping"}, "ping")
    index = 0
    try:
        if script.reasoning:
            thinking = {"type": "thinking", "thinking": "", "signature": ""}
            start = {"type": "content_block_start", "index": index, "content_block": thinking}
            writer.event(start, "content_block_start")
            for piece in _split(script.reasoning):
                writer.delta({"type": "content_block_delta", "index": index,
                              "delta": {"type": "thinking_delta", "thinking": piece}}, "content_block_delta")
            writer.event({"type": "content_block_delta", "index": index,
                          "delta": {"type": "signature_delta", "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3h"}},
                         "content_block_delta")
            writer.event({"type": "content_block_stop", "index": index}, "content_block_stop")
            index += 1
        writer.event({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}},
                     "content_block_start")
        for piece in script.pieces if script.pieces is not None else _split(script.text):
            writer.delta({"type": "content_block_delta", "index": index,
                          "delta": {"type": "text_delta", "text": piece}}, "content_block_delta")
        writer.event({"type": "content_block_stop", "index": index}, "content_block_stop")
        for call in script.tool_calls:
            index += 1
            writer.event({"type": "content_block_start", "index": index, "content_block": {
                "type": "tool_use", "id": call["id"], "name": call["name"], "input": {}}}, "content_block_start")
            for fragment in _halves(call.get("arguments", "")):
                writer.delta({"type": "content_block_delta", "index": index,
                              "delta": {"type": "input_json_delta", "partial_json": fragment}}, "content_block_delta")
            writer.event({"type": "content_block_stop", "index": index}, "content_block_stop")
        writer.check_end()
    except _StreamFailed:
        writer.event({"type": "error", "error": {"type": script.error_type or "overloaded_error",
                                                 "message": script.error_message}}, "error")
        return
    output = script.usage.output_tokens if script.usage else 0
    writer.event({"type": "message_delta", "delta": {"stop_reason": _anthropic_stop(script), "stop_sequence": None},
                  "usage": {"output_tokens": output}}, "message_delta")
    writer.event({"type": "message_stop"}, "message_stop")


def _anthropic_full(script: Script, body: dict[str, Any]) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if script.reasoning:
        content.append({"type": "thinking", "thinking": script.reasoning, "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3h"})
    content.append({"type": "text", "text": script.text})
    for call in script.tool_calls:
        content.append({"type": "tool_use", "id": call["id"], "name": call["name"],
                        "input": json.loads(call.get("arguments") or "{}")})
    return {
        "id": f"msg_{uuid.uuid4().hex[:24]}", "type": "message", "role": "assistant", "model": body.get("model"),
        "content": content, "stop_reason": _anthropic_stop(script), "stop_sequence": None,
        "usage": _anthropic_usage(script.usage, script.usage.output_tokens if script.usage else 0),
    }


# --- OpenAI Responses ------------------------------------------------------------------------------

def _responses_usage(usage: Usage) -> dict[str, Any]:
    prompt = usage.input_tokens + usage.cache_read_tokens + usage.cache_write_tokens
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": usage.cache_read_tokens},
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": prompt + usage.output_tokens,
    }


def _responses_output(script: Script, ids: dict[str, str]) -> list[dict[str, Any]]:
    output: list[dict[str, Any]] = []
    if script.reasoning:
        output.append({"id": ids["reasoning"], "type": "reasoning",
                       "summary": [{"type": "summary_text", "text": script.reasoning}]})
    output.append({"id": ids["message"], "type": "message", "status": "completed", "role": "assistant",
                   "content": [{"type": "output_text", "text": script.text, "annotations": []}]})
    for position, call in enumerate(script.tool_calls):
        output.append({"id": f"fc_{position}", "type": "function_call", "status": "completed", "call_id": call["id"],
                       "name": call["name"], "arguments": call.get("arguments", "")})
    return output


def _responses_object(script: Script, body: dict[str, Any], ident: str, status: str,
                      output: list[dict[str, Any]], with_usage: bool) -> dict[str, Any]:
    return {
        "id": ident, "object": "response", "created_at": int(time.time()), "status": status,
        "model": body.get("model"), "output": output, "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "usage": _responses_usage(script.usage) if with_usage and script.usage is not None else None,
    }


def _responses_stream(writer: _EventWriter, script: Script, body: dict[str, Any]) -> None:
    ident = f"resp_{uuid.uuid4().hex[:24]}"
    ids = {"reasoning": f"rs_{uuid.uuid4().hex[:16]}", "message": f"msg_{uuid.uuid4().hex[:16]}"}
    sequence = iter(range(10**9))

    def typed(kind: str, **fields: Any) -> dict[str, Any]:
        return {"type": kind, "sequence_number": next(sequence), **fields}

    def send(kind: str, **fields: Any) -> None:
        writer.event(typed(kind, **fields), kind)

    def delta(kind: str, **fields: Any) -> None:
        writer.delta(typed(kind, **fields), kind)

    send("response.created", response=_responses_object(script, body, ident, "in_progress", [], False))
    send("response.in_progress", response=_responses_object(script, body, ident, "in_progress", [], False))
    output_index = 0
    try:
        if script.reasoning:
            send("response.output_item.added", output_index=output_index,
                 item={"id": ids["reasoning"], "type": "reasoning", "summary": []})
            send("response.reasoning_summary_part.added", item_id=ids["reasoning"], output_index=output_index,
                 summary_index=0, part={"type": "summary_text", "text": ""})
            for piece in _split(script.reasoning):
                delta("response.reasoning_summary_text.delta", item_id=ids["reasoning"], output_index=output_index,
                      summary_index=0, delta=piece)
            send("response.reasoning_summary_text.done", item_id=ids["reasoning"], output_index=output_index,
                 summary_index=0, text=script.reasoning)
            send("response.output_item.done", output_index=output_index,
                 item={"id": ids["reasoning"], "type": "reasoning",
                       "summary": [{"type": "summary_text", "text": script.reasoning}]})
            output_index += 1
        send("response.output_item.added", output_index=output_index,
             item={"id": ids["message"], "type": "message", "status": "in_progress", "role": "assistant",
                   "content": []})
        send("response.content_part.added", item_id=ids["message"], output_index=output_index, content_index=0,
             part={"type": "output_text", "text": "", "annotations": []})
        for piece in script.pieces if script.pieces is not None else _split(script.text):
            delta("response.output_text.delta", item_id=ids["message"], output_index=output_index,
                  content_index=0, delta=piece)
        send("response.output_text.done", item_id=ids["message"], output_index=output_index, content_index=0,
             text=script.text)
        send("response.output_item.done", output_index=output_index,
             item={"id": ids["message"], "type": "message", "status": "completed", "role": "assistant",
                   "content": [{"type": "output_text", "text": script.text, "annotations": []}]})
        for position, call in enumerate(script.tool_calls):
            output_index += 1
            item = {"id": f"fc_{position}", "type": "function_call", "status": "in_progress",
                    "call_id": call["id"], "name": call["name"], "arguments": ""}
            send("response.output_item.added", output_index=output_index, item=item)
            for fragment in _halves(call.get("arguments", "")):
                delta("response.function_call_arguments.delta", item_id=item["id"], output_index=output_index,
                      delta=fragment)
            send("response.function_call_arguments.done", item_id=item["id"], output_index=output_index,
                 arguments=call.get("arguments", ""))
            send("response.output_item.done", output_index=output_index,
                 item={**item, "status": "completed", "arguments": call.get("arguments", "")})
        writer.check_end()
    except _StreamFailed:
        if script.responses_failure == "response.failed":
            failed = _responses_object(script, body, ident, "failed", [], True)
            failed["error"] = {"code": script.error_type or "server_error", "message": script.error_message}
            send("response.failed", response=failed)
        else:
            send("error", code=script.error_type or "server_error", message=script.error_message, param=None)
        return
    status = "incomplete" if script.finish == "length" else "completed"
    send(f"response.{status}", response=_responses_object(script, body, ident, status,
                                                           _responses_output(script, ids), True))


def _responses_full(script: Script, body: dict[str, Any]) -> dict[str, Any]:
    ids = {"reasoning": f"rs_{uuid.uuid4().hex[:16]}", "message": f"msg_{uuid.uuid4().hex[:16]}"}
    status = "incomplete" if script.finish == "length" else "completed"
    output = _responses_output(script, ids)
    return _responses_object(script, body, f"resp_{uuid.uuid4().hex[:24]}", status, output, True)


_STREAMS = {"chat": _chat_stream, "anthropic": _anthropic_stream, "responses": _responses_stream}
_FULL = {"chat": _chat_full, "anthropic": _anthropic_full, "responses": _responses_full}


@contextmanager
def running() -> Iterator[Upstream]:
    """`with running() as upstream:` outside pytest (benchmarks, manual runs)."""
    with Upstream() as upstream:
        yield upstream
