"""A real Celery worker is killed (SIGKILL) in the middle of indexing a document; a new
worker, started by the watchdog's requeue, finishes it without a duplicate chunk."""

import signal
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from config.celery import app
from knowledge import services, tasks
from knowledge.models import Chunk, Document
from tests.processes import database_env

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

RULE = {
    "mode": "custom",
    "rules": {"segmentation": {"separator": "\\n", "max_tokens": 60, "chunk_overlap": 0}},
}


def start_worker(queue: str) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "-Q",
            queue,
            "--pool",
            "solo",
            "--without-mingle",
            "--without-gossip",
            "--loglevel",
            "WARNING",
        ],
        cwd=ROOT,
        env=database_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_for(predicate, timeout: float, step: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("timed out")


def test_killed_worker_mid_document_is_finished_without_duplicates(tenant):
    queue = f"weft-test-index-{uuid.uuid4().hex[:8]}"
    text = "\n".join(
        f"Line {i}: the loom number {i} weaves warp {i * 7} and weft {i * 13} in pattern {i % 97}."
        for i in range(12000)
    )
    dataset = services.dataset_create(tenant=tenant, name="Big")
    document = services.document_create(
        dataset=dataset, name="big.txt", text=text, process_rule=RULE
    )

    def progress():
        return Document.dangerously_unscoped.values_list("indexing_status", "progress").get(
            pk=document.pk
        )

    first = start_worker(queue)
    try:
        tasks.index_document.apply_async(
            kwargs={"tenant_id": str(tenant.pk), "document_id": str(document.pk)}, queue=queue
        )
        wait_for(lambda: progress()[0] == "indexing" and 5 <= progress()[1] <= 60, timeout=120)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
    status, percent = progress()
    written_before = Chunk.dangerously_unscoped.filter(document=document).count()
    assert status == "indexing" and percent < 100 and written_before > 0

    # The watchdog sees no sign of life and starts the document again on a new worker.
    Document.dangerously_unscoped.filter(pk=document.pk).update(
        heartbeat_at=timezone.now() - tasks.STALLED_AFTER - timedelta(seconds=1)
    )
    second = start_worker(queue)
    try:
        assert tasks.requeue_stalled_documents(queue=queue) == 1
        wait_for(lambda: progress()[0] == "completed", timeout=180, step=0.2)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=20)
        with app.connection_for_write() as connection:
            connection.default_channel.queue_delete(queue)

    rows = list(
        Chunk.dangerously_unscoped.filter(document=document).values_list("position", "live")
    )
    positions = [position for position, _ in rows]
    assert len(positions) == len(set(positions)) == max(positions) + 1 > written_before
    assert all(live for _, live in rows)
    refreshed = Document.dangerously_unscoped.get(pk=document.pk)
    assert refreshed.attempts == 2 and refreshed.progress == 100
