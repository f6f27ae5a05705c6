"""Limits at their edge, for each kind: counted per period (messages, tokens, workflow runs),
capacity recounted from the database (members, apps, documents, storage, chunks), the rate
per minute; overrides, overage, the default plan, soft-limit e-mails, and the error each
caller gets, while other tenants go on unaffected."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core import mail
from django.utils import timezone

from apps.models import App, Message, UploadFile
from apps.services.apps import app_create
from apps.services.files import upload_create
from billing import quota
from billing.models import Alert, Counter, Metric, Override, Plan, UsageRecord
from knowledge import services as knowledge
from knowledge.models import Document
from tenants import services as tenant_services
from tenants.models import Membership
from tenants.permissions import Principal
from tenants.roles import Role
from tests.apps.pipeline_support import ask, user_of
from tests.factories import TenantFactory

pytestmark = pytest.mark.django_db


def test_a_tenant_without_a_subscription_is_on_the_default_plan(tenant):
    limits = quota.limits_for(tenant)
    assert limits.plan.is_default and limits.plan.slug == "default"
    assert limits.period_start == quota.month_start(timezone.now())
    assert limits.period_end == quota.add_months(limits.period_start, 1)
    assert all(limits.limit(m) is None for m in Metric.values)
    quota.consume(tenant, Metric.MESSAGES, 500)  # no limit: counted all the same
    assert quota.used(tenant, Metric.MESSAGES) == 500


def test_messages_stop_at_the_limit_and_say_which_and_until_when(tenant, other_tenant, on_plan):
    on_plan(tenant, messages_per_period=3)
    on_plan(other_tenant, messages_per_period=3)
    for _ in range(3):
        quota.consume(tenant, Metric.MESSAGES)
    with pytest.raises(quota.QuotaExceeded) as refused:
        quota.consume(tenant, Metric.MESSAGES)
    error = refused.value
    assert (error.status, error.code, error.used, error.limit) == (402, "quota_exceeded", 3, 3)
    assert error.extra["limit_name"] == "messages"
    assert error.resets_at == quota.limits_for(tenant).period_end
    assert "Messages per period" in error.message and "3 of 3" in error.message
    # Nothing counted for the refused one; the other tenant has its own three.
    assert quota.used(tenant, Metric.MESSAGES) == 3
    assert UsageRecord.dangerously_unscoped.filter(tenant=tenant).count() == 3
    quota.consume(other_tenant, Metric.MESSAGES, 3)


def test_a_consumption_bigger_than_what_is_left_is_refused_whole(tenant, on_plan):
    on_plan(tenant, workflow_runs_per_period=10)
    quota.consume(tenant, Metric.WORKFLOW_RUNS, 8)
    with pytest.raises(quota.QuotaExceeded):
        quota.consume(tenant, Metric.WORKFLOW_RUNS, 3)
    assert quota.consume(tenant, Metric.WORKFLOW_RUNS, 2) == 10


def test_an_override_beats_the_plan_and_may_lift_the_limit(tenant, on_plan):
    on_plan(tenant, messages_per_period=1)
    subscription = quota.subscription_for(tenant)
    override = Override.dangerously_unscoped.create(
        tenant=tenant, subscription=subscription, metric=Metric.MESSAGES, limit=2
    )
    quota.consume(tenant, Metric.MESSAGES, 2)
    with pytest.raises(quota.QuotaExceeded):
        quota.consume(tenant, Metric.MESSAGES)
    override.limit = None
    override.save()
    quota.consume(tenant, Metric.MESSAGES, 100)


def test_overage_lets_use_go_past_the_limit(tenant, on_plan):
    on_plan(tenant, messages_per_period=2, overage_per_message=Decimal("0.05"))
    assert quota.consume(tenant, Metric.MESSAGES, 5) == 5


def test_a_new_period_starts_from_zero(tenant, on_plan):
    on_plan(tenant, messages_per_period=1)
    quota.consume(tenant, Metric.MESSAGES)
    subscription = quota.subscription_for(tenant)
    # The period ended and the close job has not run yet: the next one counts already.
    subscription.period_start -= dt.timedelta(days=40)
    subscription.period_end = timezone.now() - dt.timedelta(minutes=1)
    subscription.save()
    quota.consume(tenant, Metric.MESSAGES)
    assert Counter.dangerously_unscoped.filter(tenant=tenant).count() == 2


def test_soft_limit_warnings_at_80_and_100_percent_once_per_period(
    tenant, on_plan, make_member, django_capture_on_commit_callbacks, eager
):
    owner = make_member(tenant, Role.OWNER)
    make_member(tenant, Role.MEMBER)
    on_plan(tenant, messages_per_period=10)
    with django_capture_on_commit_callbacks(execute=True):
        quota.consume(tenant, Metric.MESSAGES, 7)
    assert mail.outbox == []
    with django_capture_on_commit_callbacks(execute=True):
        quota.consume(tenant, Metric.MESSAGES, 1)  # 8 of 10
    with django_capture_on_commit_callbacks(execute=True):
        quota.consume(tenant, Metric.MESSAGES, 1)
    with django_capture_on_commit_callbacks(execute=True):
        quota.consume(tenant, Metric.MESSAGES, 1)  # 10 of 10
    subjects = [m.subject for m in mail.outbox]
    assert subjects == [
        "Acme: Messages per period is 80 % used",
        "Acme: Messages per period is fully used",
    ]
    assert all(m.to == [owner.email] for m in mail.outbox)
    assert Alert.dangerously_unscoped.filter(tenant=tenant).count() == 2
    # Another process crossing the same edge in the same period sends nothing more.
    with django_capture_on_commit_callbacks(execute=True):
        quota._maybe_alert(tenant, Metric.MESSAGES, 7, 10, quota.limits_for(tenant))
    assert len(mail.outbox) == 2


def test_a_warning_whose_mail_server_fails_is_sent_on_a_retry(
    tenant, on_plan, make_member, django_capture_on_commit_callbacks, eager, monkeypatch
):
    from billing import tasks

    make_member(tenant, Role.OWNER)
    on_plan(tenant, messages_per_period=10)
    sent = tasks.send_mail
    failures = iter([ConnectionRefusedError("mail server down")])

    def flaky(*args, **kwargs):
        if (failure := next(failures, None)) is not None:
            raise failure
        return sent(*args, **kwargs)

    monkeypatch.setattr(tasks, "send_mail", flaky)
    with django_capture_on_commit_callbacks(execute=True):
        quota.consume(tenant, Metric.MESSAGES, 8)
    assert [m.subject for m in mail.outbox] == ["Acme: Messages per period is 80 % used"]


# --- Capacity ---------------------------------------------------------------------------------


def test_apps_stop_at_the_limit_and_nothing_is_half_made(tenant, other_tenant, on_plan):
    on_plan(tenant, max_apps=2)
    app_create(tenant=tenant, name="One", mode=App.Mode.CHAT)
    app_create(tenant=tenant, name="Two", mode=App.Mode.WORKFLOW)
    with pytest.raises(quota.QuotaExceeded) as refused:
        app_create(tenant=tenant, name="Three", mode=App.Mode.WORKFLOW)
    assert (refused.value.used, refused.value.limit, refused.value.resets_at) == (2, 2, None)
    assert "Remove some" in refused.value.message
    assert App.dangerously_unscoped.filter(tenant=tenant).count() == 2
    from workflows.models import Workflow

    assert Workflow.dangerously_unscoped.filter(tenant=tenant).count() == 1
    for index in range(3):
        app_create(tenant=other_tenant, name=f"Theirs {index}", mode=App.Mode.CHAT)


def test_members_stop_at_the_limit(tenant, on_plan, make_member):
    make_member(tenant, Role.OWNER)
    on_plan(tenant, max_members=2)
    admin = Principal(tenant_id=tenant.pk, role=Role.OWNER)
    tenant_services.membership_invite(
        tenant=tenant, email="b@example.com", role=Role.MEMBER, principal=admin
    )
    with pytest.raises(quota.QuotaExceeded):
        tenant_services.membership_invite(
            tenant=tenant, email="c@example.com", role=Role.MEMBER, principal=admin
        )
    assert Membership.dangerously_unscoped.filter(tenant=tenant).count() == 2


def test_documents_and_storage_stop_at_their_limits(tenant, on_plan, make_member):
    builder = make_member(tenant, Role.BUILDER)
    dataset = knowledge.dataset_create(tenant=tenant, name="Notes", created_by=builder)
    on_plan(tenant, max_documents=2, max_storage_bytes=100)
    knowledge.document_create(dataset=dataset, name="a.txt", text="x" * 60)
    with pytest.raises(quota.QuotaExceeded) as refused:
        knowledge.document_create(dataset=dataset, name="b.txt", data=b"y" * 41)
    assert refused.value.metric == Metric.STORAGE_BYTES and refused.value.used == 60
    knowledge.document_create(dataset=dataset, name="b.txt", data=b"y" * 40)
    with pytest.raises(quota.QuotaExceeded) as refused:
        knowledge.document_create(dataset=dataset, name="c.txt", text="z")
    assert refused.value.metric == Metric.DOCUMENTS
    assert Document.dangerously_unscoped.filter(tenant=tenant).count() == 2


def test_an_upload_counts_against_storage(tenant, on_plan, make_app):
    from django.core.files.uploadedfile import SimpleUploadedFile

    app = make_app(tenant, App.Mode.CHAT)
    on_plan(tenant, max_storage_bytes=20)
    alice = user_of(app)
    upload_create(app=app, end_user=alice, uploaded=SimpleUploadedFile("a.txt", b"a" * 15))
    with pytest.raises(quota.QuotaExceeded):
        upload_create(app=app, end_user=alice, uploaded=SimpleUploadedFile("b.txt", b"b" * 6))
    assert UploadFile.dangerously_unscoped.filter(tenant=tenant).count() == 1


def paragraphs(dataset, name: str, count: int) -> Document:
    """A document that splits into `count` chunks."""
    return knowledge.document_create(
        dataset=dataset,
        name=name,
        text="\n\n".join(f"Paragraph {i}. " + "words " * 200 for i in range(count)),
        indexing_technique="economy",
        process_rule={
            "mode": "custom",
            "rules": {
                "segmentation": {"separator": "\\n\\n", "max_tokens": 300},
                "pre_processing_rules": [],
            },
        },
    )


def test_indexing_past_the_chunk_limit_fails_the_document_with_the_reason(
    tenant, on_plan, make_member
):
    from knowledge.indexing import index_document
    from knowledge.models import Chunk
    from tenants.context import tenant_context

    builder = make_member(tenant, Role.BUILDER)
    dataset = knowledge.dataset_create(tenant=tenant, name="Notes", created_by=builder)
    on_plan(tenant, max_vector_chunks=2)
    document = paragraphs(dataset, "long.txt", 6)
    with tenant_context(tenant):
        assert index_document(document_id=document.pk) == "error"
        document.refresh_from_db()
        assert "Quota exceeded: Vector chunks" in document.error
        assert Chunk.objects.filter(document=document).count() == 0


def test_documents_indexed_at_once_cannot_pass_the_chunk_limit_together(
    tenant, on_plan, make_member
):
    from billing.usage import count_capacity
    from knowledge.indexing import index_document
    from knowledge.models import Chunk
    from tenants.context import tenant_context

    builder = make_member(tenant, Role.BUILDER)
    dataset = knowledge.dataset_create(tenant=tenant, name="Notes", created_by=builder)
    plan = on_plan(tenant, max_vector_chunks=8)
    first, second = paragraphs(dataset, "a.txt", 5), paragraphs(dataset, "b.txt", 5)
    # The first is being indexed elsewhere and has written nothing yet: its five are claimed.
    Document.dangerously_unscoped.filter(pk=first.pk).update(
        indexing_status=Document.Status.INDEXING, chunks_planned=5
    )
    assert count_capacity(tenant, Metric.VECTOR_CHUNKS) == 5
    with tenant_context(tenant):
        assert index_document(document_id=second.pk) == "error"
        # Its own claim, left by a worker that died, is counted afresh when it runs again.
        assert index_document(document_id=first.pk) == "completed"
        first.refresh_from_db()
        assert first.chunks_planned == 0 and Chunk.objects.filter(document=first).count() == 5
        assert count_capacity(tenant, Metric.VECTOR_CHUNKS) == 5
        plan.max_vector_chunks = 10
        plan.save()
        assert index_document(document_id=second.pk) == "completed"
    assert count_capacity(tenant, Metric.VECTOR_CHUNKS) == 10


# --- Counted where they happen ------------------------------------------------------------


def test_a_chat_turn_counts_a_message_and_is_refused_whole_at_the_limit(tenant, on_plan, make_app):
    app = make_app(tenant, App.Mode.CHAT)
    on_plan(tenant, messages_per_period=1)
    alice = user_of(app)
    ask(app, alice, "first")
    with pytest.raises(quota.QuotaExceeded):
        ask(app, alice, "second")
    assert Message.dangerously_unscoped.filter(app=app).count() == 1


def test_tokens_are_counted_after_each_call_and_checked_before_the_next(tenant, on_plan, make_app):
    app = make_app(tenant, App.Mode.CHAT)
    on_plan(tenant, tokens_per_period=5)
    alice = user_of(app)
    ask(app, alice, "a question long enough to spend more than five tokens")
    assert quota.used(tenant, Metric.TOKENS) > 5
    with pytest.raises(quota.QuotaExceeded) as refused:
        ask(app, alice, "again")
    assert refused.value.metric == Metric.TOKENS


def test_a_workflow_run_is_counted(tenant, on_plan, make_app):
    from workflows.runner import run_create

    app = make_app(tenant, App.Mode.WORKFLOW)
    on_plan(tenant, workflow_runs_per_period=1)
    run_create(tenant=tenant, workflow=app.workflow, inputs={"query": "go"})
    with pytest.raises(quota.QuotaExceeded):
        run_create(tenant=tenant, workflow=app.workflow, inputs={"query": "go"})


# --- Features ----------------------------------------------------------------------------------


def test_custom_domains_need_the_plan_feature(tenant, on_plan):
    from tenants.domains import domain_add
    from tenants.exceptions import Forbidden

    on_plan(tenant, custom_domains=False)
    with pytest.raises(Forbidden, match="not in this workspace's plan"):
        domain_add(tenant=tenant, domain="chat.acme.test")


def test_tenants_that_hid_powered_by_before_plans_keep_hiding_it(tenant, other_tenant):
    """The migration that replaces the tenant's white-label flag with the plan's feature:
    a tenant whose branding hid "Powered by" moves to a white-label copy of its plan (made
    once), with or without a subscription yet; others stay where they are."""
    import importlib

    from django.db import connection
    from django.db.migrations.loader import MigrationLoader

    from billing.models import Subscription
    from tenants.models import Branding

    name = "0004_white_label_tenants"
    migration = importlib.import_module(f"billing.migrations.{name}")
    state = MigrationLoader(connection).project_state(("billing", name)).apps
    showing = TenantFactory(slug="showing")
    for hider in (tenant, other_tenant):
        Branding.dangerously_unscoped.create(tenant=hider, show_powered_by=False)
    Branding.dangerously_unscoped.create(tenant=showing, show_powered_by=True)
    Subscription.dangerously_unscoped.filter(tenant=other_tenant).delete()  # as before plans
    migration.carry_over(state, None)
    migration.carry_over(state, None)
    quota.forget()
    assert quota.feature(tenant, "remove_powered_by")
    assert quota.feature(other_tenant, "remove_powered_by")
    assert not quota.feature(showing, "remove_powered_by")
    copy = Plan.objects.get(slug="default-white-label")
    assert copy.name == "Default (white label)" and not copy.is_default
    assert Plan.objects.count() == 2


def test_the_plan_admin_refuses_negative_and_absurd_values(console, superuser):
    client = console(superuser)
    response = client.post(
        "/admin/billing/plan/add/",
        {
            "name": "Broken",
            "slug": "broken",
            "price": "-1",
            "currency": "usd",
            "period_months": "1",
            "trial_days": "0",
            "max_apps": "-5",
            "messages_per_period": str(10**18),
            "custom_domains": "on",
        },
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert set(errors) >= {"price", "max_apps", "messages_per_period", "currency"}
    assert not Plan.objects.filter(slug="broken").exists()


def test_a_second_default_plan_is_refused_readably(console, superuser):
    client = console(superuser)
    response = client.post(
        "/admin/billing/plan/add/",
        {
            "name": "Also default",
            "slug": "also",
            "price": "0",
            "currency": "USD",
            "period_months": "1",
            "trial_days": "0",
            "is_default": "on",
        },
    )
    assert response.status_code == 200
    assert "one default plan" in response.content.decode()


def test_plans_are_for_platform_operators_only(console, tenant, make_member):
    client = console(make_member(tenant, Role.OWNER), tenant)
    assert client.get("/admin/billing/plan/").status_code == 403


def test_other_tenants_are_unaffected_by_a_full_one(tenant, on_plan, make_app):
    other = TenantFactory(slug="initech")
    on_plan(tenant, messages_per_period=0)
    with pytest.raises(quota.QuotaExceeded):
        quota.consume(tenant, Metric.MESSAGES)
    app = make_app(other, App.Mode.CHAT)
    ask(app, user_of(app), "fine")
    assert quota.used(other, Metric.MESSAGES) == 1
