"""What the chat page's sidebar is rendered with (chat/sidebar.py, templates/chat/sidebar.html):
the user's own active conversations only, the open one marked, bookmarks and Share when the role has
them, titles escaped. In the browser: tests/test_page_sidebar.py."""
from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser
from django.template.loader import render_to_string
from django.test import RequestFactory

from chat.models import Conversation, Tag
from chat.sidebar import PAGE_SIZE, sidebar_for

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("builtin_roles")]


@pytest.fixture
def alice(make_user, make_role):
    return make_user("alice", role=make_role("STAFF"))


def render(user, conversation=None) -> str:
    request = RequestFactory().get("/")
    request.user = user
    return render_to_string("chat/sidebar.html", {"conversation": conversation, "user": user}, request=request)


def test_the_first_page_holds_the_users_active_conversations_newest_first(alice, make_user):
    older = Conversation.objects.create(user=alice, title="Older")
    newer = Conversation.objects.create(user=alice, title="Newer")
    Conversation.objects.create(user=alice, title="Archived", archived=True)
    Conversation.objects.create(user=alice, title="Temporary", temporary=True)
    Conversation.objects.create(user=make_user("bob"), title="Bob's")

    sidebar = sidebar_for(user=alice, current_id=older.pk)

    assert [i.title for i in sidebar.items] == ["Newer", "Older"]
    assert [i.current for i in sidebar.items] == [False, True]
    assert sidebar.items[0].id == newer.pk and sidebar.next_cursor is None


def test_past_a_page_the_cursor_continues_with_the_apis_same_filter(alice, client):
    for n in range(PAGE_SIZE + 2):
        Conversation.objects.create(user=alice, title=f"C{n}")
    Conversation.objects.create(user=alice, title="Archived", archived=True)

    sidebar = sidebar_for(user=alice)
    client.force_login(alice)
    rest = client.get(f"/api/conversations?archived=false&temporary=false&cursor={sidebar.next_cursor}").json()

    assert len(sidebar.items) == PAGE_SIZE
    assert [c["title"] for c in rest["items"]] == ["C1", "C0"] and rest["next_cursor"] is None


def test_bookmarks_and_their_counts_come_with_a_role_that_has_them(alice, make_user, make_role):
    convo = Conversation.objects.create(user=alice, title="Tagged")
    convo.tags.add(Tag.objects.create(user=alice, name="work"))
    Tag.objects.create(user=make_user("bob"), name="bob's tag")

    sidebar = sidebar_for(user=alice)
    assert sidebar.bookmarks and [(t.name, t.count) for t in sidebar.tags] == [("work", 1)]
    assert sidebar.items[0].tags_json == '["work"]'

    no_bookmarks = make_user("carol", role=make_role("PLAIN", can_use_bookmarks=False))
    assert not sidebar_for(user=no_bookmarks).bookmarks and sidebar_for(user=no_bookmarks).tags == []
    html = render(no_bookmarks)
    assert 'data-action="tags"' not in html and "sb-tags-dialog" not in html


def test_share_comes_with_a_role_that_may_share_and_export_with_every_role(alice, make_user, make_role):
    assert sidebar_for(user=alice).share
    html = render(alice)
    assert 'data-action="share"' in html and 'id="sb-share-dialog"' in html

    no_share = make_user("carol", role=make_role("PLAIN", can_share_conversations=False))
    assert not sidebar_for(user=no_share).share
    html = render(no_share)
    assert 'data-action="share"' not in html and "sb-share-dialog" not in html
    assert [f for f in ("md", "txt", "json", "csv") if f'data-format="{f}"' in html] == ["md", "txt", "json", "csv"]


def test_the_template_marks_the_open_conversation_and_escapes_titles(alice):
    convo = Conversation.objects.create(user=alice, title='<img src=x onerror="alert(1)">')

    html = render(alice, convo)

    assert "<img src=x" not in html and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html
    assert f'href="/c/{convo.pk}" id="sbt-{convo.pk}" aria-current="page"' in html
    assert 'class="sb-tag"' not in html  # no bookmarks yet: no filter buttons
    assert 'data-action="tags"' in html


def test_nothing_is_rendered_for_an_anonymous_visitor():
    assert render(AnonymousUser()).strip() == ""
