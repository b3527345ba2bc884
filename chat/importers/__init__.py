"""Importing conversations from other tools' exports, all or nothing.

`import_file` recognises the format from the content (not the file name): a zip (ChatGPT's or
Claude's export), a JSON array (ChatGPT's `mapping` conversations, Claude's `chat_messages`, or
Atrium/LibreChat exports) or a JSON object (one LibreChat conversation, or Chatbot UI's
`{version, history}`). Arrays are streamed item by item with ijson, so a 100 MB export never sits
in memory whole; every conversation is saved inside one transaction, and the first problem found
rolls all of them back with a message naming the file, conversation and message.
"""
from __future__ import annotations

import json
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

import ijson
from django.conf import settings
from django.db import transaction

from chat.importers import chatbotui, chatgpt, claude, librechat
from chat.importers.base import ImportedConversation, ImportFailed
from chat.importers.save import save_conversation

if TYPE_CHECKING:
    from accounts.models import User

Parser = Callable[[Any, str], ImportedConversation]

DEFAULT_MAX_BYTES = 512 * 1024 * 1024  # ChatGPT exports of heavy users reach a few hundred MB
ZIP_MAGIC = b"PK\x03\x04"


@dataclass
class ImportReport:
    conversations: list[str] = field(default_factory=list)  # ids of the conversations created
    messages: int = 0


def max_bytes() -> int:
    return int(getattr(settings, "CHAT_IMPORT_MAX_BYTES", DEFAULT_MAX_BYTES))


def import_file(*, user: User, fileobj: IO[bytes], name: str = "upload") -> ImportReport:
    """Import every conversation in the file for `user`, or nothing (ImportFailed says why)."""
    report = ImportReport()
    with transaction.atomic():
        for where, imported in _conversations(fileobj, name):
            conversation = save_conversation(user=user, imported=imported, where=where)
            report.conversations.append(str(conversation.pk))
            report.messages += len(imported.messages)
    if not report.conversations:
        raise ImportFailed(f"{name}: no conversations found.")
    return report


def _conversations(fileobj: IO[bytes], name: str) -> Iterator[tuple[str, ImportedConversation]]:
    head = fileobj.read(4)
    fileobj.seek(0)
    if head == ZIP_MAGIC:
        yield from _zip(fileobj, name)
    else:
        yield from _json(fileobj, name)


def _zip(fileobj: IO[bytes], name: str) -> Iterator[tuple[str, ImportedConversation]]:
    try:
        archive = zipfile.ZipFile(fileobj)
    except zipfile.BadZipFile as exc:
        raise ImportFailed(f"{name}: not a readable zip ({exc}).") from exc
    with archive:
        members = set(archive.namelist())
        for shard in _shards(archive, members, name):
            if shard not in members:
                raise ImportFailed(f"{name}: export_manifest.json lists {shard}, which is not in the zip.")
            with archive.open(shard) as stream:
                yield from _json(stream, f"{name}/{shard}")


def _shards(archive: zipfile.ZipFile, members: set[str], name: str) -> list[str]:
    """ChatGPT exports since 2026 list `conversations-NNN.json` shards in export_manifest.json;
    older ones (and Claude's) hold a single conversations.json."""
    if "export_manifest.json" in members:
        try:
            manifest = json.loads(archive.read("export_manifest.json"))
        except ValueError as exc:
            raise ImportFailed(f"{name}/export_manifest.json: not JSON ({exc}).") from exc
        shards = _manifest_shards(manifest)
        if shards is None:
            raise ImportFailed(f"{name}/export_manifest.json: no list of conversation files in it.")
        return shards
    if "conversations.json" in members:
        return ["conversations.json"]
    raise ImportFailed(f"{name}: neither export_manifest.json nor conversations.json is in the zip.")


def _manifest_shards(manifest: object) -> list[str] | None:
    """The conversation shards a manifest names, wherever it lists files: a list of names or of
    objects with a path/name, under `conversations` or `files`."""
    for key in ("conversations", "files"):
        entries = manifest.get(key) if isinstance(manifest, dict) else None
        if isinstance(entries, list):
            names = [e if isinstance(e, str) else (e.get("path") or e.get("name")) for e in entries
                     if isinstance(e, str | dict)]
            shards = [n for n in names if isinstance(n, str) and n.rsplit("/", 1)[-1].startswith("conversations")]
            if shards:
                return shards
    return None


def _json(stream: IO[bytes], name: str) -> Iterator[tuple[str, ImportedConversation]]:
    first = _first_char(stream)
    try:
        if first == b"[":
            yield from _array(stream, name)
        elif first == b"{":
            yield from _object(json.load(stream), name)
        else:
            raise ImportFailed(f"{name}: not a JSON export (it starts with {first!r}).")
    except (ijson.JSONError, ValueError) as exc:
        if isinstance(exc, ImportFailed):
            raise
        raise ImportFailed(f"{name}: not valid JSON ({exc}).") from exc


def _first_char(stream: IO[bytes]) -> bytes:
    """The first non-blank byte, the stream left at its start (zip members cannot seek back)."""
    peeked: bytes | None = stream.peek(64) if hasattr(stream, "peek") else None
    if peeked is not None:
        return peeked.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    position = stream.tell()
    head = stream.read(64)
    stream.seek(position)
    return head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]


def _array(stream: IO[bytes], name: str) -> Iterator[tuple[str, ImportedConversation]]:
    parser: Parser | None = None
    for index, item in enumerate(ijson.items(stream, "item", use_float=True)):
        where = f"{name}, conversation {index + 1}"
        if parser is None:
            parser = _array_parser(item, where)
        yield where, parser(item, where)


def _array_parser(item: object, where: str) -> Parser:
    if chatgpt.looks_like(item):
        return chatgpt.parse
    if claude.looks_like(item):
        return claude.parse
    if librechat.looks_like(item):
        return librechat.parse
    raise ImportFailed(f"{where}: not a ChatGPT, Claude or LibreChat conversation.")


def _object(data: dict[str, Any], name: str) -> Iterator[tuple[str, ImportedConversation]]:
    if librechat.looks_like(data):
        yield name, librechat.parse(data, name)
    elif chatbotui.looks_like(data):
        for index, conversation in enumerate(chatbotui.parse_all(data, name)):
            yield f"{name}, conversation {index + 1}", conversation
    else:
        raise ImportFailed(f"{name}: not a LibreChat or Chatbot UI export.")
