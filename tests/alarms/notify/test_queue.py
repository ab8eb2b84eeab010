"""The durable queue on a real SQLite file: a key is queued once per target (also after
delivery and after reopening), order per target, dead letters, and the byte cap: the
newest notifications win, drops are counted, the file stays within the cap."""

from __future__ import annotations

from pathlib import Path

from shopfloor.alarms.notify.queue import Notification, NotificationQueue, Queued, RowState

CAP = 256 * 1024


def _note(target: str, key: str, size: int = 10, instance: str = "m:r") -> Notification:
    return Notification(target, instance, key, "alarm.transition", b"x" * size)


def _head(queue: NotificationQueue, target: str) -> Queued | None:
    ready = queue.ready(target, 1)
    return ready[0] if ready else None


def test_a_key_is_queued_once_per_target_across_delivery_and_reopening(tmp_path: Path) -> None:
    queue = NotificationQueue(tmp_path / "q.sqlite", CAP, keep_delivered_s=3600)
    queue.add([_note("a", "k1"), _note("a", "k2"), _note("b", "k1")], now=100)
    queue.add([_note("a", "k1")], now=101)
    head = _head(queue, "a")
    assert head is not None and head.notification.key == "k1" and head.queued_at == 100
    queue.delivered(head.id, now=102)
    queue.add([_note("a", "k1")], now=103)  # computed again after its delivery
    queue.close()
    reopened = NotificationQueue(tmp_path / "q.sqlite", CAP, keep_delivered_s=3600)
    reopened.add([_note("a", "k2")], now=104)
    head = _head(reopened, "a")
    assert head is not None and head.notification.key == "k2"
    assert reopened.counts() == {("a", RowState.DELIVERED): 1, ("a", RowState.PENDING): 1,
                                 ("b", RowState.PENDING): 1}


def test_ready_offers_each_instances_oldest_and_leaves_busy_ones_out(
        tmp_path: Path) -> None:
    queue = NotificationQueue(tmp_path / "q.sqlite", CAP, keep_delivered_s=3600)
    queue.add([_note("a", "p-raise", instance="press1"), _note("a", "p-clear", instance="press1"),
               _note("a", "w-raise", instance="weld1"), _note("b", "x", instance="press1")],
              now=100)
    ready = queue.ready("a", 10)
    assert [q.notification.key for q in ready] == ["p-raise", "w-raise"]
    assert [q.notification.key for q in queue.ready("a", 1)] == ["p-raise"]
    busy = frozenset({ready[0].id})  # press1's raise in flight: its clear waits
    assert [q.notification.key for q in queue.ready("a", 10, busy)] == ["w-raise"]
    queue.dead(ready[0].id, now=200, error="HTTP 410")
    assert [q.notification.key for q in queue.ready("a", 10)] == ["p-clear", "w-raise"]
    assert queue.counts()["a", RowState.DEAD] == 1
    assert queue.dead_letters(10) == [("a", "p-raise", 1, "HTTP 410")]
    assert queue.requeue_dead("b", now=300) == 0 and queue.requeue_dead(None, now=300) == 1
    assert [q.notification.key for q in queue.ready("a", 10)] == ["p-raise", "w-raise"]


def test_a_full_queue_drops_the_oldest_counts_them_and_keeps_its_cap(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite"
    queue = NotificationQueue(path, CAP, keep_delivered_s=3600)
    total = 200
    for i in range(total):  # 200 x 4 KiB: three times what the cap holds
        queue.add([_note("a", f"k{i:04d}", size=4096)], now=float(i))
    assert queue.dropped > 0
    counts = queue.counts()[("a", RowState.PENDING)]
    assert counts + queue.dropped == total
    head = _head(queue, "a")
    assert head is not None and head.notification.key == f"k{queue.dropped:04d}"
    queue.close()
    assert path.stat().st_size <= CAP
