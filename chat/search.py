"""Search across one user's own messages: ranked hits with highlighted snippets.

Three ways, chosen by the database and the query (the indexes are made in migration 0003_library):
- PostgreSQL, word queries: the stored `search_vector` (GIN with user_id), `websearch_to_tsquery`
  (quotes, `or`, `-word` as users type them in a search box), `ts_rank`, `ts_headline`.
- Chinese / Japanese / Korean queries: substring matching (ILIKE, served by the trigram index on
  PostgreSQL), every space-separated term required; newest first. A word parser cannot split
  these scripts, and a trigram index finds any substring of three characters or more.
- SQLite (the embedded default): FTS5 `MATCH` with the same query syntax translated, `bm25`,
  `snippet()`; CJK queries use LIKE over the user's messages.

Temporary chats never appear; archived ones do. Snippets are HTML-escaped text with the matches in
<mark>; nothing else of the message's markup survives.
"""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, cast

from django.db import connection
from django.utils.dateparse import parse_datetime
from django.utils.html import escape

from chat.errors import InvalidRequest

if TYPE_CHECKING:
    from accounts.models import User

# Highlight markers placed by the database around matches, turned into <mark> after escaping:
# private-use characters, which escaping leaves alone and no real text contains.
START, STOP = "\ue000", "\ue001"
HEADLINE_OPTIONS = (
    f'StartSel={START}, StopSel={STOP}, MaxWords=30, MinWords=12, MaxFragments=2, FragmentDelimiter=" … "'
)
CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")
TERM = re.compile(r'(-?)"([^"]*)"|(\S+)')
MAX_QUERY = 500
SNIPPET_CHARS = 80
SqlParam = int | str | datetime  # what these queries bind


@dataclass(frozen=True)
class SearchFilters:
    start: datetime | None = None
    end: datetime | None = None
    endpoint: str | None = None
    model: str | None = None
    tag: str | None = None


@dataclass(frozen=True)
class Hit:
    conversation_id: str
    conversation_title: str
    message_id: str
    role: str
    created_at: datetime
    snippet: str


def search_messages(*, user: User, query: str, filters: SearchFilters | None = None,
                    limit: int = 20, offset: int = 0) -> list[Hit]:
    """The user's messages matching `query`, best first (newest first for CJK substring queries)."""
    query = query.strip()
    if not query:
        return []
    if len(query) > MAX_QUERY:
        raise InvalidRequest(f"The search text is longer than {MAX_QUERY} characters.")
    where, params = _filters(user.pk, filters or SearchFilters())
    if CJK.search(query):
        return _substring_search(query, where, params, limit, offset)
    if connection.vendor == "postgresql":
        return _postgres_search(query, where, params, limit, offset)
    return _sqlite_search(query, where, params, limit, offset)


def _filters(user_id: int, filters: SearchFilters) -> tuple[str, list[SqlParam]]:
    where = ["m.user_id = %s", "NOT c.temporary"]
    params: list[SqlParam] = [user_id]
    if filters.start:
        where.append("m.created_at >= %s")
        params.append(filters.start)
    if filters.end:
        where.append("m.created_at < %s")
        params.append(filters.end)
    if filters.endpoint:
        where.append("c.endpoint_name = %s")
        params.append(filters.endpoint)
    if filters.model:
        where.append("(m.model = %s OR c.model = %s)")
        params += [filters.model, filters.model]
    if filters.tag:
        where.append(
            "EXISTS (SELECT 1 FROM chat_tag_conversations tc JOIN chat_tag t ON t.id = tc.tag_id "
            "WHERE tc.conversation_id = c.id AND t.user_id = %s AND t.name = %s)"
        )
        params += [user_id, filters.tag]
    return " AND ".join(where), params


def _postgres_search(query: str, where: str, params: list[SqlParam], limit: int, offset: int) -> list[Hit]:
    sql = f"""
        SELECT h.id, h.conversation_id, h.title, h.role, h.created_at,
               ts_headline('simple', h.text, websearch_to_tsquery('simple', %s), %s)
        FROM (
            SELECT m.id, m.conversation_id, c.title, m.role, m.created_at, m.text,
                   ts_rank(m.search_vector, q) AS rank
            FROM chat_message m
            JOIN chat_conversation c ON c.id = m.conversation_id
            CROSS JOIN websearch_to_tsquery('simple', %s) q
            WHERE m.search_vector @@ q AND {where}
            ORDER BY rank DESC, m.created_at DESC
            LIMIT %s OFFSET %s
        ) h
        ORDER BY h.rank DESC, h.created_at DESC"""
    return _hits(sql, [query, HEADLINE_OPTIONS, query, *params, limit, offset])


def _sqlite_search(query: str, where: str, params: list[SqlParam], limit: int, offset: int) -> list[Hit]:
    match = fts5_query(query)
    if not match:
        return []
    sql = f"""
        SELECT m.id, m.conversation_id, c.title, m.role, m.created_at,
               snippet(chat_message_fts, 0, %s, %s, ' … ', 24)
        FROM chat_message_fts
        JOIN chat_message m ON m.rowid = chat_message_fts.rowid
        JOIN chat_conversation c ON c.id = m.conversation_id
        WHERE chat_message_fts MATCH %s AND {where}
        ORDER BY bm25(chat_message_fts), m.created_at DESC
        LIMIT %s OFFSET %s"""
    return _hits(sql, [START, STOP, match, *params, limit, offset])


def _substring_search(query: str, where: str, params: list[SqlParam], limit: int, offset: int) -> list[Hit]:
    terms = [t for t in query.split() if t]
    like = " AND ".join(["m.text LIKE %s ESCAPE '!'" if connection.vendor != "postgresql"
                         else "m.text ILIKE %s ESCAPE '!'"] * len(terms))
    patterns = ["%" + re.sub(r"([!%_])", r"!\1", t) + "%" for t in terms]
    sql = f"""
        SELECT m.id, m.conversation_id, c.title, m.role, m.created_at, m.text
        FROM chat_message m JOIN chat_conversation c ON c.id = m.conversation_id
        WHERE {like} AND {where}
        ORDER BY m.created_at DESC
        LIMIT %s OFFSET %s"""
    hits = _hits(sql, [*patterns, *params, limit, offset], highlight=False)
    return [Hit(**{**h.__dict__, "snippet": substring_snippet(h.snippet, terms)}) for h in hits]


def _hits(sql: str, params: list[SqlParam], *, highlight: bool = True) -> list[Hit]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return [
        Hit(conversation_id=_uuid(conv), conversation_title=title, message_id=_uuid(mid), role=role,
            # SQLite returns the (non-null) column as ISO text, which always parses
            created_at=created if isinstance(created, datetime) else cast(datetime, parse_datetime(created)),
            snippet=_marked(snippet) if highlight else snippet)
        for mid, conv, title, role, created, snippet in rows
    ]


def _uuid(value: object) -> str:
    # SQLite hands back UUIDs as 32 hex characters without dashes
    return str(value if not isinstance(value, str) else uuid.UUID(value))


def _marked(text: str) -> str:
    return escape(text or "").replace(START, "<mark>").replace(STOP, "</mark>")


def substring_snippet(text: str, terms: list[str]) -> str:
    """A window of the text around the first term found, every term marked."""
    lowered = text.lower()
    first = min((i for i in (lowered.find(t.lower()) for t in terms) if i >= 0), default=0)
    begin = max(0, first - SNIPPET_CHARS // 2)
    window = text[begin:begin + SNIPPET_CHARS * 2]
    pattern = re.compile("|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True)), re.IGNORECASE)
    marked = pattern.sub(lambda m: f"{START}{m.group(0)}{STOP}", window)
    prefix = "… " if begin else ""
    suffix = " …" if begin + SNIPPET_CHARS * 2 < len(text) else ""
    return prefix + _marked(marked) + suffix


def fts5_query(query: str) -> str:
    """websearch_to_tsquery's syntax in FTS5's: words and "quoted phrases" all required, `or`
    between two terms, `-term` excluded. Every term is quoted, so FTS5's operators typed by a user
    are plain words."""
    positive: list[str] = []
    negative: list[str] = []
    pending_or = False
    for match in TERM.finditer(query):
        negated, phrase, word = match.group(1), match.group(2), match.group(3)
        if word is not None and word.lower() == "or" and positive:
            pending_or = True
            continue
        if word is not None and word.startswith("-") and len(word) > 1:
            negated, word = "-", word[1:]
        text = (phrase if phrase is not None else word).replace('"', "")
        if not text.strip(" -"):
            continue
        term = '"' + text + '"'
        if negated:
            negative.append(term)
        elif pending_or:
            positive[-1] = f"({positive[-1]} OR {term})"
        else:
            positive.append(term)
        pending_or = False
    if not positive:
        return ""
    return " AND ".join(positive) + "".join(f" NOT {t}" for t in negative)
