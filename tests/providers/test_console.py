"""The providers' console pages: credentials (secret never rendered, Test button), the
model catalog, default models with fallbacks, and read-only usage."""

import json
import logging
import socket

import pytest
from django.utils.html import escape

from providers import http as guarded
from providers.models import (
    DefaultModel,
    Fallback,
    Model,
    ModelKind,
    ProviderCredential,
    ProviderKind,
    UsageEvent,
)
from tenants.models import AuditLog
from tenants.roles import Role

SECRET = "sk-console-0123456789abcdefQRST"
CREDENTIALS = "/admin/providers/providercredential/"
MODELS = "/admin/providers/model/"
DEFAULTS = "/admin/providers/defaultmodel/"
USAGE = "/admin/providers/usageevent/"


def make_credential(tenant, name="main", kind=ProviderKind.OPENAI, secret=SECRET, **fields):
    credential = ProviderCredential(tenant=tenant, kind=kind, name=name, **fields)
    credential.secret = secret
    credential.save()
    return credential


def make_model(tenant, name="llama3.2", kind=ModelKind.CHAT, **fields):
    fields.setdefault("provider", ProviderKind.OPENAI_COMPATIBLE)
    return Model.dangerously_unscoped.create(tenant=tenant, name=name, kind=kind, **fields)


def form(**fields):
    """A credential form as the browser posts it."""
    data = {"kind": "openai", "name": "OpenAI", "base_url": "", "secret": "", "options": "{}"}
    data |= {"enabled": "on", "weight": "1"}
    data.update(fields)
    return {key: value for key, value in data.items() if value is not None}


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def page_messages(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


@pytest.fixture
def admin(tenant, make_member, console):
    return console(make_member(tenant, Role.ADMIN), tenant)


@pytest.fixture
def builder(tenant, make_member, console):
    return console(make_member(tenant, Role.BUILDER), tenant)


@pytest.fixture
def allowlist(settings):
    def set_(*entries):
        settings.WEFT_OUTBOUND_ALLOWLIST = list(entries)
        guarded.reset_allowlist()

    set_()
    yield set_
    guarded.reset_allowlist()


# --- Credentials ---------------------------------------------------------------------------


def test_secret_is_stored_encrypted_and_never_rendered_logged_or_audited(admin, tenant, caplog):
    with caplog.at_level(logging.DEBUG):
        created = admin.post(f"{CREDENTIALS}add/", form(secret=SECRET, weight="2"))
        assert created.status_code == 302, created.content.decode()
        credential = ProviderCredential.dangerously_unscoped.get(tenant=tenant)
        assert credential.secret == SECRET and SECRET not in credential.secret_encrypted
        assert credential.weight == 2

        listing = admin.get(CREDENTIALS).content.decode()
        change = admin.get(f"{CREDENTIALS}{credential.pk}/change/").content.decode()
        history = admin.get(f"{CREDENTIALS}{credential.pk}/history/").content.decode()
        audit = admin.get("/admin/tenants/auditlog/").content.decode()
    for page in (listing, change, history, audit):
        assert SECRET not in page and SECRET[-8:] not in page
    assert "••••••••QRST" in listing
    assert "Stored: ••••••••QRST. Leave empty to keep it" in change
    assert 'type="password"' in change and 'name="secret"' in change
    assert SECRET not in caplog.text
    (row,) = AuditLog.dangerously_unscoped.filter(object_type="providers.providercredential")
    assert row.changes["secret_encrypted"] == [None, "••••••"]
    assert SECRET not in json.dumps(row.changes)


def test_add_page_asks_for_the_secret_without_showing_one(admin):
    page = admin.get(f"{CREDENTIALS}add/").content.decode()
    assert "It is stored encrypted and never shown again." in page
    assert "None stored" not in page and "clear_secret" not in page


def test_empty_secret_keeps_it_new_one_replaces_it_and_it_can_be_removed(admin, tenant):
    credential = make_credential(tenant)
    url = f"{CREDENTIALS}{credential.pk}/change/"
    assert admin.post(url, form(name="Renamed")).status_code == 302
    credential.refresh_from_db()
    assert credential.name == "Renamed" and credential.secret == SECRET
    assert (
        admin.post(url, form(name="Renamed", secret="sk-brand-new-0000000000")).status_code == 302
    )
    credential.refresh_from_db()
    assert credential.secret == "sk-brand-new-0000000000"
    assert admin.post(url, form(name="Renamed", clear_secret="on")).status_code == 302
    credential.refresh_from_db()
    assert credential.secret_encrypted == "" and credential.secret == ""


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"base_url": "not a url"}, "base_url", "is not a valid URL: use http:// or https://"),
        (
            {"kind": "openai_compatible"},
            "base_url",
            "An OpenAI-compatible server needs its base URL, e.g. http://ollama:11434/v1.",
        ),
        (
            {"kind": "azure_openai"},
            "base_url",
            "Azure OpenAI needs the resource&#x27;s base URL",
        ),
        ({"options": "[1, 2]"}, "options", "Options must be a JSON object"),
        ({"options": "{not json"}, "options", "Enter a valid JSON."),
        ({"weight": "0"}, "weight", "The weight must be between 1 and 32767"),
        ({"name": "taken"}, "name", "A credential named “taken” already exists in this tenant."),
    ],
)
def test_credential_form_errors_are_readable(admin, tenant, fields, field, message):
    make_credential(tenant, name="taken")
    response = admin.post(f"{CREDENTIALS}add/", form(**fields))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert field in errors, errors
    assert message in response.content.decode()
    assert ProviderCredential.dangerously_unscoped.count() == 1


def test_compatible_server_on_a_single_label_host_is_accepted(admin, tenant):
    response = admin.post(
        f"{CREDENTIALS}add/",
        form(kind="openai_compatible", name="ollama", base_url="http://ollama:11434/v1"),
    )
    assert response.status_code == 302
    credential = ProviderCredential.dangerously_unscoped.get(name="ollama")
    assert credential.effective_base_url == "http://ollama:11434/v1" and credential.secret == ""


def test_builder_sees_credentials_read_only_without_the_secret(builder, tenant):
    credential = make_credential(tenant)
    listing = builder.get(CREDENTIALS)
    assert listing.status_code == 200 and "••••••••QRST" in listing.content.decode()
    assert "test_credentials" not in listing.content.decode()
    page = builder.get(f"{CREDENTIALS}{credential.pk}/change/")
    body = page.content.decode()
    assert page.status_code == 200 and SECRET not in body and "••••••••QRST" in body
    assert 'name="secret"' not in body and f"{credential.pk}/test/" not in body
    assert builder.post(f"{CREDENTIALS}{credential.pk}/test/").status_code == 403
    assert builder.get(f"{CREDENTIALS}add/").status_code == 403
    assert builder.post(f"{CREDENTIALS}{credential.pk}/change/", form()).status_code == 403
    credential.refresh_from_db()
    assert credential.status == "unchecked"


def test_operator_has_no_provider_pages(tenant, make_member, console):
    operator = console(make_member(tenant, Role.OPERATOR), tenant)
    for url in (CREDENTIALS, MODELS, DEFAULTS, USAGE):
        assert operator.get(url).status_code == 403, url
    assert "Models and providers" not in operator.get("/admin/").content.decode()


def test_other_tenants_rows_are_404(admin, other_tenant):
    foreign = make_credential(other_tenant)
    assert admin.get(f"{CREDENTIALS}{foreign.pk}/change/").status_code == 404
    assert admin.post(f"{CREDENTIALS}{foreign.pk}/test/").status_code == 404
    assert admin.post(f"{CREDENTIALS}not-a-uuid/test/").status_code == 404
    foreign.refresh_from_db()
    assert foreign.status == "unchecked"
    model = make_model(other_tenant)
    default = DefaultModel.dangerously_unscoped.create(
        tenant=other_tenant, kind="chat", model=model
    )
    event = UsageEvent.dangerously_unscoped.create(
        tenant=other_tenant, operation="chat", provider="openai", model_name="x"
    )
    for url in (
        f"{MODELS}{model.pk}/change/",
        f"{DEFAULTS}{default.pk}/change/",
        f"{USAGE}{event.pk}/change/",
    ):
        assert admin.get(url).status_code == 404, url


def test_test_button_shows_a_connection_failure(admin, tenant, allowlist):
    allowlist("127.0.0.1/32")
    credential = make_credential(
        tenant,
        kind=ProviderKind.OPENAI_COMPATIBLE,
        base_url=f"http://127.0.0.1:{closed_port()}/v1",
    )
    change = admin.get(f"{CREDENTIALS}{credential.pk}/change/").content.decode()
    assert f'action="{CREDENTIALS}{credential.pk}/test/"' in change
    assert admin.get(f"{CREDENTIALS}{credential.pk}/test/").status_code == 405
    response = admin.post(f"{CREDENTIALS}{credential.pk}/test/", follow=True)
    assert response.redirect_chain[-1][0] == f"{CREDENTIALS}{credential.pk}/change/"
    (message,) = page_messages(response)
    credential.refresh_from_db()
    assert credential.status == "failed" and credential.last_error
    assert message == f"main failed: {credential.last_error}"
    assert SECRET not in response.content.decode()
    assert escape(credential.last_error) in response.content.decode()


def test_test_button_without_allowlist_says_outbound_blocked(admin, tenant, allowlist):
    credential = make_credential(
        tenant, kind=ProviderKind.OPENAI_COMPATIBLE, base_url="http://127.0.0.1:9/v1"
    )
    response = admin.post(f"{CREDENTIALS}{credential.pk}/test/", follow=True)
    assert page_messages(response) == [
        "main failed: Requests to 127.0.0.1 are not allowed: it resolves to a private or local "
        "address (127.0.0.1). An operator can allow it with WEFT_OUTBOUND_ALLOWLIST."
    ]
    credential.refresh_from_db()
    assert credential.status == "failed"


def test_superuser_tests_another_tenants_credential(
    superuser, tenant, other_tenant, console, allowlist
):
    credential = make_credential(
        other_tenant, kind=ProviderKind.OPENAI_COMPATIBLE, base_url="http://127.0.0.1:9/v1"
    )
    client = console(superuser, tenant)
    listing = client.get(CREDENTIALS).content.decode()
    assert "Globex" in listing  # the tenant column, for platform operators
    response = client.post(f"{CREDENTIALS}{credential.pk}/test/", follow=True)
    (message,) = page_messages(response)
    assert message.startswith("main failed: Requests to 127.0.0.1 are not allowed")
    credential.refresh_from_db()
    assert credential.status == "failed"


def test_test_selected_credentials_action(admin, tenant, allowlist):
    allowlist("127.0.0.1/32")
    port = closed_port()
    first = make_credential(
        tenant, name="a", kind=ProviderKind.OPENAI_COMPATIBLE, base_url=f"http://127.0.0.1:{port}"
    )
    second = make_credential(
        tenant, name="b", kind=ProviderKind.OPENAI_COMPATIBLE, base_url="http://10.0.0.1:1"
    )
    response = admin.post(
        CREDENTIALS,
        {"action": "test_credentials", "_selected_action": [str(first.pk), str(second.pk)]},
        follow=True,
    )
    shown = page_messages(response)
    assert len(shown) == 2 and all(" failed: " in message for message in shown)
    assert any("10.0.0.1 are not allowed" in message for message in shown)
    statuses = set(ProviderCredential.dangerously_unscoped.values_list("status", flat=True))
    assert statuses == {"failed"}


def test_test_button_succeeds_against_the_fake_llm(admin, tenant, allowlist, fake_llm, caplog):
    allowlist("127.0.0.1/32")
    fake_llm.script("OK")
    credential = make_credential(
        tenant,
        kind=ProviderKind.OPENAI_COMPATIBLE,
        base_url=fake_llm.openai_base_url,
        secret=fake_llm.api_key,
        options={"test_model": "fake-chat"},
    )
    with caplog.at_level(logging.DEBUG):
        response = admin.post(f"{CREDENTIALS}{credential.pk}/test/", follow=True)
    assert caplog.records and fake_llm.api_key not in caplog.text
    assert page_messages(response) == ["main works: fake-chat answered: OK"]
    credential.refresh_from_db()
    assert credential.status == "ok" and credential.last_error == ""
    assert fake_llm.last_request.headers["authorization"] == f"Bearer {fake_llm.api_key}"
    assert fake_llm.api_key not in response.content.decode()


def test_delete_credential_through_the_console(admin, tenant):
    credential = make_credential(tenant)
    response = admin.post(f"{CREDENTIALS}{credential.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not ProviderCredential.dangerously_unscoped.exists()


# --- Models --------------------------------------------------------------------------------


def model_form(**fields):
    data = {
        "provider": "openai_compatible",
        "credential": "",
        "name": "llama3.2",
        "label": "",
        "kind": "chat",
        "context_window": "8192",
        "max_output_tokens": "1024",
        "dimensions": "",
        "input_price": "0",
        "output_price": "0",
        "currency": "USD",
        "enabled": "on",
    }
    data.update(fields)
    return data


def test_admin_sees_global_catalog_read_only_and_own_models(admin, tenant, other_tenant):
    own = make_model(tenant, name="own-llama")
    make_model(other_tenant, name="their-llama")
    listing = admin.get(f"{MODELS}?all=").content.decode()
    assert "own-llama" in listing and "gpt-4o-mini" in listing and "their-llama" not in listing
    assert "2.5 / 10 USD" in listing  # gpt-4o's prices per million
    assert "tools, JSON schema, vision" in listing
    gpt = Model.catalog.get(name="gpt-4o")
    page = admin.get(f"{MODELS}{gpt.pk}/change/")
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    refused = admin.post(f"{MODELS}{gpt.pk}/change/", model_form(input_price="0.01"))
    assert refused.status_code == 403
    assert admin.post(f"{MODELS}{gpt.pk}/delete/", {"post": "yes"}).status_code == 403
    gpt.refresh_from_db()
    assert str(gpt.input_price) == "2.5000"
    assert 'name="_save"' in admin.get(f"{MODELS}{own.pk}/change/").content.decode()


def test_admin_adds_a_model_on_own_credential_only(admin, tenant, other_tenant):
    mine = make_credential(
        tenant, name="my-ollama", kind=ProviderKind.OPENAI_COMPATIBLE, base_url="http://o:1"
    )
    theirs = make_credential(
        other_tenant,
        name="their-ollama",
        kind=ProviderKind.OPENAI_COMPATIBLE,
        base_url="http://o:1",
    )
    add_page = admin.get(f"{MODELS}add/").content.decode()
    assert "my-ollama" in add_page and "their-ollama" not in add_page
    assert 'value="offline"' not in add_page

    foreign = admin.post(f"{MODELS}add/", model_form(credential=str(theirs.pk)))
    assert foreign.status_code == 200
    assert "Select a valid choice" in str(foreign.context["adminform"].form.errors["credential"])

    created = admin.post(f"{MODELS}add/", model_form(credential=str(mine.pk), currency="eur"))
    assert created.status_code == 302, created.context["adminform"].form.errors
    model = Model.dangerously_unscoped.get(name="llama3.2")
    assert model.tenant_id == tenant.pk and model.credential_id == mine.pk
    assert model.currency == "EUR"


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"input_price": "-1"}, "input_price", "A price cannot be negative."),
        ({"context_window": "0"}, "context_window", "The context window must be at least 1"),
        ({"currency": "U$D"}, "currency", "Use a three-letter currency code"),
        ({"provider": "offline"}, "provider", "Select a valid choice"),
        ({"name": "dup"}, "name", "You already have a model with this name on this provider."),
    ],
)
def test_model_form_errors_are_readable(admin, tenant, fields, field, message):
    make_model(tenant, name="dup")
    response = admin.post(f"{MODELS}add/", model_form(**fields))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert message in " ".join(errors.get(field, [])), errors
    assert Model.dangerously_unscoped.filter(tenant=tenant).count() == 1


def test_credential_kind_must_match_the_provider(admin, tenant):
    anthropic = make_credential(tenant, name="claude", kind=ProviderKind.ANTHROPIC)
    response = admin.post(f"{MODELS}add/", model_form(credential=str(anthropic.pk)))
    assert "“claude” is a credential for Anthropic; choose one for OpenAI-compatible" in " ".join(
        response.context["adminform"].form.errors["credential"]
    )


def test_superuser_edits_global_prices(superuser, tenant, console):
    client = console(superuser, tenant)
    gpt = Model.catalog.get(name="gpt-4o-mini")
    page = client.get(f"{MODELS}{gpt.pk}/change/").content.decode()
    assert 'name="_save"' in page and 'name="credential"' not in page
    data = model_form(
        provider="openai",
        name="gpt-4o-mini",
        context_window="128000",
        max_output_tokens="16384",
        input_price="0.2",
        output_price="0.8",
        supports_tools="on",
    )
    response = client.post(f"{MODELS}{gpt.pk}/change/", data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    gpt.refresh_from_db()
    assert str(gpt.input_price) == "0.2000" and gpt.tenant_id is None and gpt.supports_tools
    assert client.post(f"{MODELS}{gpt.pk}/delete/", {"post": "yes"}).status_code == 403


# --- Default models ------------------------------------------------------------------------


def test_defaults_page_says_what_the_runtime_uses(admin, tenant):
    page = admin.get(DEFAULTS).content.decode()
    assert "What the runtime uses in Acme" in page
    for label in ("Built-in extractive chat", "Built-in hashing embedder", "Built-in lexical"):
        assert label in page
    assert page.count("built-in offline model: no default chosen") == 3


def inline(*models, prefix="-"):
    data = {
        f"{prefix}TOTAL_FORMS": str(len(models)),
        f"{prefix}INITIAL_FORMS": "0",
        f"{prefix}MIN_NUM_FORMS": "0",
        f"{prefix}MAX_NUM_FORMS": "1000",
    }
    for index, (position, model) in enumerate(models):
        data[f"{prefix}{index}-position"] = str(position)
        data[f"{prefix}{index}-model"] = str(model.pk)
    return data


@pytest.fixture
def fallback_prefix(admin):
    """The management-form prefix of the fallbacks inline, as the add page names it."""
    page = admin.get(f"{DEFAULTS}add/").content.decode()
    start = page.index('name="') + len('name="')
    marker = "-TOTAL_FORMS"
    end = page.index(marker)
    return page[page.rindex('"', start, end) + 1 : end] + "-"


def test_admin_chooses_a_default_with_ordered_fallbacks(admin, tenant, fallback_prefix):
    mini, gpt4o = Model.catalog.get(name="gpt-4o-mini"), Model.catalog.get(name="gpt-4o")
    own = make_model(tenant, name="llama3.2")
    data = {"kind": "chat", "model": str(mini.pk)}
    data |= inline((2, gpt4o), (1, own), prefix=fallback_prefix)
    response = admin.post(f"{DEFAULTS}add/", data)
    assert response.status_code == 302, response.content.decode()[:3000]
    default = DefaultModel.dangerously_unscoped.get(tenant=tenant)
    assert default.kind == "chat" and default.model_id == mini.pk
    fallbacks = Fallback.dangerously_unscoped.filter(default=default).order_by("position")
    assert [f.model_id for f in fallbacks] == [own.pk, gpt4o.pk]
    page = admin.get(DEFAULTS).content.decode()
    assert "llama3.2, gpt-4o" in page
    assert page.count("built-in offline model: no default chosen") == 2
    # The kind is taken now: the add page no longer offers it.
    assert 'value="chat"' not in admin.get(f"{DEFAULTS}add/").content.decode()


def test_a_kind_has_one_default(admin, tenant, fallback_prefix):
    gpt = Model.catalog.get(name="gpt-4o")
    DefaultModel.dangerously_unscoped.create(tenant=tenant, kind="chat", model=gpt)
    response = admin.post(
        f"{DEFAULTS}add/", {"kind": "chat", "model": str(gpt.pk)} | inline(prefix=fallback_prefix)
    )
    assert response.status_code == 200
    assert "kind" in response.context["adminform"].form.errors
    assert DefaultModel.dangerously_unscoped.count() == 1


def test_default_and_fallbacks_must_be_of_the_kind(admin, tenant, fallback_prefix):
    mini = Model.catalog.get(name="gpt-4o-mini")
    embedding = Model.catalog.get(name="text-embedding-3-small")
    wrong_model = admin.post(
        f"{DEFAULTS}add/",
        {"kind": "embedding", "model": str(mini.pk)} | inline(prefix=fallback_prefix),
    )
    assert wrong_model.status_code == 200
    assert "gpt-4o-mini is a chat model; choose an embedding model." in (
        " ".join(wrong_model.context["adminform"].form.errors["model"])
    )
    wrong_fallback = admin.post(
        f"{DEFAULTS}add/",
        {"kind": "chat", "model": str(mini.pk)}
        | inline((0, embedding), (1, mini), prefix=fallback_prefix),
    )
    assert wrong_fallback.status_code == 200
    body = wrong_fallback.content.decode()
    assert "text-embedding-3-small is an embedding model; a fallback must be a chat model." in body
    assert "gpt-4o-mini is the default itself." in body
    assert not DefaultModel.dangerously_unscoped.exists()


def test_deleting_a_default_goes_back_to_the_built_in_model(admin, tenant):
    default = DefaultModel.dangerously_unscoped.create(
        tenant=tenant, kind="chat", model=Model.catalog.get(name="gpt-4o")
    )
    response = admin.post(f"{DEFAULTS}{default.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not DefaultModel.dangerously_unscoped.exists()
    assert admin.get(DEFAULTS).content.decode().count("no default chosen") == 3


def test_builder_sees_defaults_but_does_not_change_them(builder, tenant):
    default = DefaultModel.dangerously_unscoped.create(
        tenant=tenant, kind="chat", model=Model.catalog.get(name="gpt-4o")
    )
    assert builder.get(DEFAULTS).status_code == 200
    page = builder.get(f"{DEFAULTS}{default.pk}/change/")
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    assert builder.get(f"{DEFAULTS}add/").status_code == 403


# --- Usage ---------------------------------------------------------------------------------


def test_usage_is_listed_read_only(admin, builder, tenant, other_tenant):
    event = UsageEvent.dangerously_unscoped.create(
        tenant=tenant,
        operation="chat",
        provider="openai",
        model_name="gpt-4o-mini",
        prompt_tokens=120,
        completion_tokens=30,
        total_tokens=150,
        cost="0.00003600",
        latency_ms=850,
        time_to_first_token_ms=210,
        status="error",
        error_code="provider_unavailable",
    )
    UsageEvent.dangerously_unscoped.create(
        tenant=other_tenant, operation="chat", provider="openai", model_name="their-model"
    )
    listing = builder.get(USAGE).content.decode()
    assert "150 (120 + 30)" in listing and "0.000036 USD" in listing
    assert "provider_unavailable" in listing and "their-model" not in listing
    filtered = admin.get(f"{USAGE}?status__exact=ok").content.decode()
    assert "provider_unavailable" not in filtered
    page = admin.get(f"{USAGE}{event.pk}/change/")
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    assert admin.get(f"{USAGE}add/").status_code == 403
    assert admin.post(f"{USAGE}{event.pk}/delete/", {"post": "yes"}).status_code == 403
    assert UsageEvent.dangerously_unscoped.filter(pk=event.pk).exists()


def test_console_lists_use_a_fixed_number_of_queries(admin, tenant, django_assert_max_num_queries):
    for index in range(8):
        make_credential(tenant, name=f"c{index}")
        make_model(tenant, name=f"m{index}")
        UsageEvent.dangerously_unscoped.create(
            tenant=tenant, operation="chat", provider="openai", model_name=f"m{index}"
        )
    DefaultModel.dangerously_unscoped.create(
        tenant=tenant, kind="chat", model=Model.catalog.get(name="gpt-4o")
    )
    for url in (CREDENTIALS, MODELS, DEFAULTS, USAGE):
        with django_assert_max_num_queries(20):
            assert admin.get(url).status_code == 200
