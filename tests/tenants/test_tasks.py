"""TenantTask on a real Celery worker (in a thread) against the real Redis broker."""

import queue
import uuid

import pytest
from celery import shared_task
from celery.contrib.testing.worker import start_worker
from celery.signals import task_failure, task_success

from config.celery import app
from tenants.exceptions import TenantSuspended
from tenants.models import Membership, Tenant
from tenants.roles import Role
from tenants.tasks import TenantTask

# The worker thread has its own database connection: it sees committed rows only.
pytestmark = pytest.mark.django_db(transaction=True)

OUTCOME_TIMEOUT = 20


@shared_task(base=TenantTask)
def tenant_member_count(*, tenant_id: str) -> int:
    """Members of the tenant, counted through the tenant-scoped manager."""
    return Membership.objects.count()


@pytest.fixture(scope="module")
def worker_queue(django_db_setup, django_db_blocker):
    """A real worker consuming a queue of this test run's own, so no other worker takes
    our messages and this worker takes no one else's."""
    name = f"weft-test-{uuid.uuid4().hex[:12]}"
    with django_db_blocker.unblock():
        with start_worker(app, pool="solo", perform_ping_check=False, queues=[name]):
            yield name
    with app.connection_for_write() as connection:
        connection.default_channel.queue_delete(name)


@pytest.fixture
def outcomes():
    """outcomes(task_id) -> ("success", result) or ("failure", exception), from the worker."""
    seen: queue.Queue = queue.Queue()

    def on_success(sender, result, **kwargs):
        seen.put((sender.request.id, "success", result))

    def on_failure(sender, task_id, exception, **kwargs):
        seen.put((task_id, "failure", exception))

    task_success.connect(on_success, weak=False)
    task_failure.connect(on_failure, weak=False)

    def wait(task_id):
        while True:
            found_id, kind, value = seen.get(timeout=OUTCOME_TIMEOUT)
            if found_id == task_id:
                return kind, value

    yield wait
    task_success.disconnect(on_success)
    task_failure.disconnect(on_failure)


def test_task_runs_in_its_tenants_context(
    worker_queue, outcomes, tenant, other_tenant, make_member
):
    make_member(tenant, Role.OWNER)
    make_member(tenant, Role.MEMBER)
    make_member(other_tenant, Role.MEMBER)

    sent = tenant_member_count.apply_async(kwargs={"tenant_id": str(tenant.pk)}, queue=worker_queue)

    # The scoped manager raises without a tenant in context and filters by it with one.
    assert outcomes(sent.id) == ("success", 2)


def test_suspended_tenant_is_refused(worker_queue, outcomes, tenant, make_member):
    make_member(tenant, Role.OWNER)
    Tenant.objects.filter(pk=tenant.pk).update(status=Tenant.Status.SUSPENDED)

    sent = tenant_member_count.apply_async(kwargs={"tenant_id": str(tenant.pk)}, queue=worker_queue)

    kind, error = outcomes(sent.id)
    assert kind == "failure"
    assert isinstance(error, TenantSuspended)
    assert tenant.slug in str(error)


def test_unknown_tenant_fails(worker_queue, outcomes, db):
    sent = tenant_member_count.apply_async(
        kwargs={"tenant_id": str(uuid.uuid4())}, queue=worker_queue
    )

    kind, error = outcomes(sent.id)
    assert kind == "failure"
    assert isinstance(error, Tenant.DoesNotExist)


def test_task_without_tenant_id_is_refused(worker_queue, outcomes, db):
    # The caller is stopped before anything is sent ...
    with pytest.raises(TypeError, match="tenant_id"):
        tenant_member_count.apply_async(kwargs={}, queue=worker_queue)

    # ... and a message sent by name, past that check, fails on the worker.
    sent = app.send_task(tenant_member_count.name, kwargs={}, queue=worker_queue)
    kind, error = outcomes(sent.id)
    assert kind == "failure"
    assert isinstance(error, TypeError)
    assert "tenant_id" in str(error)
