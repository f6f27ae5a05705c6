"""The portal in a real browser (Debian's chromium through Playwright) against a live Daphne:
a streamed answer arriving in several steps, stopping a stream, rating an answer and finding
the rating in the admin, reopening a past conversation, the tenant's colours and logo, the
embed snippet on a page of another origin, a workflow app's steps and outputs, a password
site, the branded 404 and closed pages, and markup from users and models staying text.

Screenshots of each step go to test-artefacts/portal/ (see conftest.py)."""

from __future__ import annotations

import http.server
import re
import threading
import time
from collections.abc import Iterator

import pytest

from apps.models import App, Conversation, Message, MessageFeedback
from apps.services import sites as site_services
from tenants import branding
from tests.apps import conftest as app_fixtures
from tests.apps import live
from tests.apps.pipeline_support import configure
from tests.providers import conftest as provider_fixtures

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("settled")]

daphne_server = live.daphne_server
credential = provider_fixtures.credential
make_app = app_fixtures.make_app

XSS = '<img src=x onerror="window.__xss=1"><script>window.__xss=1</script>'
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201e221bc330000000049454e44ae426082"
)


@pytest.fixture
def fake(credential, fake_llm):
    credential()
    return fake_llm


@pytest.fixture
def chat(tenant, make_app, fake):
    app = configure(
        make_app(tenant, App.Mode.CHAT, name="Help desk"),
        opening_statement="Hello! Ask me about **looms**.",
        suggested_questions=["What is a weft?"],
    )
    return app


def site_url(server, app, **query: str) -> str:
    tail = "&".join(f"{key}={value}" for key, value in query.items())
    return f"{server.url}/c/{app.site.code}/" + (f"?{tail}" if tail else "")


def answers(page):
    return page.locator(".weft-bot:not(.weft-opening) .weft-body")


def no_script_ran(page) -> None:
    assert page.evaluate("() => window.__xss === undefined"), "injected markup ran"
    assert not page.errors, page.errors


def test_an_answer_streams_in_several_steps_and_renders_markdown(
    page, shot, daphne_server, chat, fake
):
    fake.latency_per_token = 0.08
    fake.script("Looms **interlace** two sets of threads:\n\n- the warp\n- the weft", times=1)
    page.goto(site_url(daphne_server, chat))
    page.wait_for_selector(".weft-opening")
    assert "looms" in page.locator(".weft-opening").inner_text()
    shot(page, "1-opening")
    page.fill("#weft-query", "How does a loom work?")
    page.keyboard.press("Enter")
    page.wait_for_function(
        "() => { const b = document.querySelectorAll('.weft-bot:not(.weft-opening) .weft-body');"
        " return b.length && b[b.length - 1].innerText.trim().length > 0; }"
    )
    seen = set()
    for _ in range(40):  # the answer grows while we look
        seen.add(answers(page).last.inner_text())
        if "weft" in seen and len(seen) > 2:
            break
        page.wait_for_timeout(60)
    shot(page, "2-streaming")
    page.wait_for_selector(".weft-actions:not([hidden]) >> text=Copy")
    final = answers(page).last
    assert final.locator("strong").inner_text() == "interlace"
    assert final.locator("li").all_inner_texts() == ["the warp", "the weft"]
    assert len({text for text in seen if text.strip()}) >= 3, seen  # arrived in steps
    shot(page, "3-answered")
    no_script_ran(page)


def test_stop_keeps_the_partial_answer(page, shot, daphne_server, chat, fake):
    fake.latency_per_token = 0.15
    fake.script(" ".join(f"word{i}" for i in range(60)), times=1)
    page.goto(site_url(daphne_server, chat))
    page.fill("#weft-query", "Tell me a long story")
    page.click("#weft-send")
    page.wait_for_function(
        "() => /word3/.test(document.querySelector('.weft-bot:last-child .weft-body').innerText)"
    )
    page.click("#weft-stop")
    page.wait_for_selector("#weft-send:not([hidden])")
    text = answers(page).last.inner_text()
    assert "word3" in text and "word59" not in text
    shot(page, "stopped")
    message = Message.dangerously_unscoped.get(app=chat)
    assert message.status == Message.Status.STOPPED
    assert message.answer.startswith("word0 word1 word2 word3")


def test_the_chat_takes_input_only_once_it_is_wired(page, daphne_server, chat, fake):
    # A slow parameters answer leaves the page without its handlers for a while. The box must
    # not be usable then: a send would be the browser's own form submission, a page reload.
    def slow(route):
        time.sleep(1.5)
        route.continue_()

    fake.script("Sent.", times=1)
    page.route("**/api/parameters", slow)
    page.goto(site_url(daphne_server, chat))
    page.fill("#weft-query", "Typed at once")
    page.click("#weft-send")
    page.wait_for_selector("text=Sent.")
    assert "?" not in page.url
    assert Message.dangerously_unscoped.get(app=chat).query == "Typed at once"


def test_a_rating_reaches_the_admin_and_a_past_conversation_reopens(
    page, shot, daphne_server, chat, fake, admin_client, tenant
):
    fake.script("Warp threads run lengthwise.", times=1)
    page.goto(site_url(daphne_server, chat))
    page.fill("#weft-query", "Which threads run lengthwise?")
    page.click("#weft-send")
    page.wait_for_selector(".weft-actions:not([hidden]) >> text=Like")
    page.click(".weft-actions >> text=Like")
    page.wait_for_selector(".weft-actions button[aria-pressed='true']")
    shot(page, "1-liked")
    feedback = MessageFeedback.dangerously_unscoped.get(message__app=chat)
    assert feedback.rating == "like"

    # The new conversation is in the list; a new chat, then back to it.
    page.wait_for_selector(".weft-conv-open")
    page.click("#weft-new-chat")
    page.wait_for_selector(".weft-opening")
    assert answers(page).count() == 0
    page.click(".weft-conv-open")
    page.wait_for_selector("text=Warp threads run lengthwise.")
    assert page.locator(".weft-user .weft-body").inner_text() == "Which threads run lengthwise?"
    assert page.locator(".weft-actions button[aria-pressed='true']").inner_text() == "Like"
    shot(page, "2-reopened")

    # The operator sees the rating in the app's logs.
    logs = admin_client.get("/admin/apps/message/?rating=like")
    assert logs.status_code == 200
    assert "Which threads run lengthwise?" in logs.content.decode()
    unrated = admin_client.get("/admin/apps/message/?rating=dislike")
    assert "Which threads run lengthwise?" not in unrated.content.decode()


def test_the_tenant_brand_colours_and_logo(page, shot, daphne_server, chat, tenant):
    branding.branding_update(
        tenant=tenant,
        actor=None,
        product_name="Loomworks Assist",
        primary_color="#7a1f5c",
        accent_color="#0b6e4f",
        logo=PNG,
    )
    page.goto(site_url(daphne_server, chat))
    page.wait_for_selector(".weft-header img")
    header = page.locator(".weft-header")
    assert header.evaluate("h => getComputedStyle(h).backgroundColor") == "rgb(122, 31, 92)"
    logo = page.locator(".weft-header img")
    assert logo.get_attribute("alt") == "Loomworks Assist"
    assert logo.evaluate("img => img.complete && img.naturalWidth") == 1
    assert "Loomworks Assist" in page.title()
    shot(page, "branded")


class _OtherOrigin:
    """A page on another origin (its own loopback server) that embeds the chat bubble."""

    def __init__(self, html: str) -> None:
        body = html.encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://localhost:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def other_origin() -> Iterator[type[_OtherOrigin]]:
    made: list[_OtherOrigin] = []

    def make(html: str) -> _OtherOrigin:
        server = _OtherOrigin(html)
        made.append(server)
        return server

    yield make  # type: ignore[misc]
    for server in made:
        server.close()


def test_the_embed_snippet_on_another_origin(
    page, shot, daphne_server, chat, fake, tenant, other_origin
):
    fake.script("Hello from the bubble.", times=1)
    host = other_origin(
        "<!doctype html><title>Shop</title><h1>A shop</h1>"
        f'<script src="{daphne_server.url}/static/portal/embed.js" '
        f'data-weft-site="{chat.site.code}" defer></script>'
    )
    site_services.site_update(tenant=tenant, site=chat.site, embed_origins=[host.url.rstrip("/")])
    page.goto(host.url)
    page.click("#weft-bubble")
    frame = page.frame_locator("#weft-bubble-frame")
    frame.locator("#weft-query").fill("Hi")
    frame.locator("#weft-query").press("Enter")
    frame.locator("text=Hello from the bubble.").wait_for()
    shot(page, "embedded")

    # A page on an origin the site does not list may not frame it.
    chat.site.refresh_from_db()
    site_services.site_update(tenant=tenant, site=chat.site, embed_origins=[])
    refused: list[str] = []
    page.on("console", lambda message: refused.append(message.text))
    page.goto(host.url)
    page.click("#weft-bubble")
    page.wait_for_timeout(800)
    assert any("frame-ancestors" in text for text in refused), refused


def test_a_workflow_app_shows_its_steps_and_outputs(page, shot, daphne_server, tenant, make_app):
    app = make_app(tenant, App.Mode.WORKFLOW, name="Summariser")
    page.goto(site_url(daphne_server, app))
    page.wait_for_selector("#weft-run")
    shot(page, "1-form")
    page.click("#weft-run")  # its start node asks for a query first
    page.wait_for_selector("#weft-toast:not([hidden])")
    assert page.locator("#weft-toast").inner_text() == "Query is required."
    page.fill("#weft-input-query", "Summarise: the warp runs lengthwise.")
    page.click("#weft-run")
    page.wait_for_selector(".weft-output-item")
    steps = page.locator(".weft-step").all_inner_texts()
    assert len(steps) >= 2 and all("Done" in step for step in steps), steps
    shot(page, "2-finished")


def test_a_password_site_asks_for_it(page, shot, daphne_server, chat, tenant):
    site_services.site_set_password(tenant=tenant, site=chat.site, password="warp-and-weft")
    site_services.site_update(tenant=tenant, site=chat.site, access_mode="password")
    page.goto(site_url(daphne_server, chat))
    page.wait_for_selector("#weft-gate-password")
    page.fill("#weft-gate-password", "wrong")
    page.click("#weft-gate-form button[type=submit]")
    page.wait_for_selector("#weft-gate-error:not([hidden])")
    assert "not right" in page.locator("#weft-gate-error").inner_text()
    shot(page, "1-wrong-password")
    page.fill("#weft-gate-password", "warp-and-weft")
    page.click("#weft-gate-form button[type=submit]")
    page.wait_for_selector(".weft-opening")
    shot(page, "2-open")


def test_unknown_and_closed_sites_get_branded_pages(page, shot, daphne_server, chat):
    response = page.goto(f"{daphne_server.url}/c/no-such-site/")
    assert response.status == 404
    assert page.locator("#weft-missing h1").inner_text() == "Page not found"
    shot(page, "1-missing")
    App.dangerously_unscoped.filter(pk=chat.pk).update(enable_site=False)
    response = page.goto(site_url(daphne_server, chat))
    assert response.status == 403
    assert page.locator("#weft-closed").is_visible()
    shot(page, "2-closed")


def test_markup_in_messages_names_answers_titles_and_css_stays_inert(
    page, shot, daphne_server, chat, fake, tenant
):
    site_services.site_update(tenant=tenant, site=chat.site, title=XSS, description=XSS)
    branding.branding_update(
        tenant=tenant,
        custom_css=".weft-header { color: white } </style><script>window.__xss=1</script>",
        footer_text=XSS[:200],
    )
    fake.script(f"Here: {XSS} and [link](javascript:window.__xss=1)", times=2)
    page.goto(site_url(daphne_server, chat))
    page.wait_for_selector(".weft-opening, #weft-query")
    assert page.locator("#weft-title").inner_text() == XSS
    page.fill("#weft-query", XSS)
    page.click("#weft-send")
    page.wait_for_selector(".weft-actions:not([hidden])")
    assert page.locator(".weft-user .weft-body").inner_text() == XSS
    answer = answers(page).last
    assert "<script>" in answer.inner_text()
    assert answer.locator("a").count() == 0
    # A conversation named with markup, listed after a reload.
    Conversation.dangerously_unscoped.filter(app=chat).update(name=XSS)
    page.reload()
    page.wait_for_selector(".weft-conv-open")
    assert page.locator(".weft-conv-open").first.inner_text() == XSS
    assert page.locator("img[src=x]").count() == 0
    shot(page, "escaped")
    no_script_ran(page)


def test_the_page_follows_the_browser_language(browser, daphne_server, chat):
    context = browser.new_context(locale="zh-CN", extra_http_headers={"Accept-Language": "zh-CN"})
    zh = context.new_page()
    zh.goto(site_url(daphne_server, chat))
    zh.wait_for_selector("#weft-send")
    assert zh.locator("#weft-send").inner_text() == "发送"
    assert re.search(r'lang="zh-Hans"', zh.content())
    context.close()


def test_on_a_phone_with_the_keyboard_alone(browser, shot, daphne_server, chat, fake):
    fake.latency_per_token = 0.2
    fake.script(" ".join(f"w{i}" for i in range(40)), times=1)
    context = browser.new_context(viewport={"width": 390, "height": 780}, is_mobile=True)
    phone = context.new_page()
    phone.goto(site_url(daphne_server, chat))
    phone.wait_for_selector(".weft-opening")
    assert not phone.locator("#weft-sidebar").evaluate(
        "n => n.getBoundingClientRect().right > 0"
    ), "the conversation list is tucked away on a phone"
    shot(phone, "1-phone")
    # Keyboard only: the message box has the focus; Enter sends, Escape stops.
    assert phone.evaluate("() => document.activeElement.id") == "weft-query"
    phone.keyboard.type("Count to forty")
    phone.keyboard.press("Enter")
    phone.wait_for_function("() => /w2/.test(document.querySelector('#weft-messages').innerText)")
    phone.keyboard.press("Escape")
    phone.wait_for_selector("#weft-send:not([hidden])")
    assert "w39" not in phone.locator("#weft-messages").inner_text()
    fake.latency_per_token = 0
    phone.keyboard.type("And now?")
    phone.keyboard.press("Enter")
    phone.wait_for_selector("text=You said: And now?")  # the fake echoes an unscripted ask
    # The menu opens the list and moves the focus into it.
    phone.click("#weft-menu")
    phone.wait_for_function(
        "() => document.querySelector('#weft-sidebar').getBoundingClientRect().left >= 0"
    )
    assert phone.evaluate("() => document.activeElement.id") == "weft-new-chat"
    shot(phone, "2-phone-conversations")
    context.close()


def test_files_upload_when_allowed_and_a_too_large_one_is_refused(
    page, shot, daphne_server, tenant, make_app, fake, tmp_path
):
    app = configure(
        make_app(tenant, App.Mode.CHAT, name="Takes files"),
        file_upload={
            "enabled": True,
            "allowed_file_types": ["document"],
            "allowed_file_upload_methods": ["local_file"],
            "number_limits": 2,
        },
    )
    small = tmp_path / "notes.txt"
    small.write_text("The warp runs lengthwise.")
    large = tmp_path / "huge.txt"
    large.write_bytes(b"x" * (live.UPLOAD_MAX_BYTES + 1))
    fake.script("Read it.", times=1)
    page.goto(site_url(daphne_server, app))
    page.wait_for_selector("#weft-attach:not([hidden])")
    page.set_input_files("#weft-file-input", str(large))
    page.wait_for_selector("#weft-toast:not([hidden])")
    assert "larger than" in page.locator("#weft-toast").inner_text()
    shot(page, "1-too-large")
    page.set_input_files("#weft-file-input", str(small))
    page.wait_for_selector(".weft-chip:not(.is-busy)")
    page.fill("#weft-query", "What does the file say?")
    page.click("#weft-send")
    page.wait_for_selector("text=Read it.")
    shot(page, "2-sent-with-a-file")
    message = Message.dangerously_unscoped.get(app=app)
    assert len(message.files) == 1


def test_conversations_are_renamed_and_deleted_and_suggestions_asked(
    page, shot, daphne_server, chat, fake
):
    fake.script("A weft is the crosswise thread.", times=1)
    page.goto(site_url(daphne_server, chat))
    page.click(".weft-suggestion >> text=What is a weft?")  # a suggested question asks it
    page.wait_for_selector("text=A weft is the crosswise thread.")
    assert page.locator(".weft-user .weft-body").inner_text() == "What is a weft?"
    page.wait_for_selector(".weft-conv-open")
    page.once("dialog", lambda dialog: dialog.accept("Threads"))
    page.click(".weft-conv-act >> nth=0")
    page.wait_for_selector(".weft-conv-open >> text=Threads")
    assert Conversation.dangerously_unscoped.get(app=chat).name == "Threads"
    shot(page, "1-renamed")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click(".weft-conv-act >> nth=1")
    page.wait_for_function("() => !document.querySelector('.weft-conv-open')")
    assert page.locator(".weft-opening").is_visible()  # back to a new chat
    assert Conversation.dangerously_unscoped.get(app=chat).is_deleted
    shot(page, "2-deleted")


def test_a_tenant_past_its_messages_sees_why(page, shot, daphne_server, chat, tenant):
    from billing import quota
    from billing.models import Plan

    subscription = quota.subscription_for(tenant)
    subscription.plan = Plan.objects.create(slug="tiny", name="Tiny", messages_per_period=0)
    subscription.save()
    page.goto(site_url(daphne_server, chat))
    page.fill("#weft-query", "Hello?")
    page.click("#weft-send")
    error = page.wait_for_selector(".weft-body .weft-error")
    assert "Quota exceeded: Messages per period" in error.inner_text()
    shot(page, "quota-exceeded")
    assert not Message.dangerously_unscoped.filter(app=chat).exists()
