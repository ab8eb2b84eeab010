"""The edge's publish side alone: outbox (group commits to a real SQLite file),
publisher and MQTT link in this process, a real mosquitto in its own.

    ./dev.sh bench publish [--rate 1000] [--seconds 20] [--inflight 20] [--backlog 20000]
                           [--machines 1000]

Live: `--rate` telemetry messages a second (~500 bytes, `--machines` topics) are put into
the outbox in 20 ms time slots, as the agent's pollers do, and flow through commit,
publish, PUBACK and the deletion of their rows. Backlog: `--backlog` messages are
committed while the publisher is paused (a broker outage), then drained as fast as the
broker takes them. Outbox alone: the same messages through commit, the publisher's
fetch and the PUBACKed deletions, without MQTT (the part SQLite and the hand-over cost,
free of the event loop's wake-ups). Prints the process's CPU per message for each
(time.process_time: every thread of this process, the checkpoint thread included;
mosquitto is not counted), messages/s and the load average (the machine is shared: read
every figure with it).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from shopfloor.edge.metrics import EdgeMetrics
from shopfloor.edge.mqtt import SESSION_EXPIRY_S, EdgeMqttLink
from shopfloor.edge.outbox import Outbox
from shopfloor.edge.publisher import Publisher
from shopfloor.edge.store import Message, Store
from shopfloor.shared.enums import QueueFullPolicy
from shopfloor.shared.mqtt import Session
from shopfloor.shared.plant import Broker
from tests.harness.services import LOOPBACK, Mosquitto

SLOT_S = 0.02
PAYLOAD = b'{"v": 1, "values": {' + b", ".join(b'"p%d": %d.5' % (i, i) for i in range(20)) + b"}}"


def messages(count: int, machines: int) -> list[Message]:
    """Telemetry-sized messages on `machines` topics, each payload distinct."""
    return [
        Message(f"shopfloor/v1/bench/line1/m{n % machines:04d}/telemetry",
                PAYLOAD + b" %d" % n, sample=True)
        for n in range(count)
    ]


class Side:
    """Outbox, publisher and link, running as the agent runs them."""

    def __init__(self, tmp: Path, port: int, inflight: int) -> None:
        self.store = Store(tmp / "outbox.sqlite3", 10_000_000, QueueFullPolicy.DROP_OLDEST)
        self.metrics = EdgeMetrics()
        self.outbox = Outbox(self.store, self.metrics)
        self.link = EdgeMqttLink(
            Broker(host=LOOPBACK, port=port),
            Session(f"bench-publish-{os.getpid()}", expiry_s=SESSION_EXPIRY_S, inflight=inflight),
            backoff_max_s=1,
        )
        self.publisher = Publisher(self.outbox, self.link, inflight, self.metrics)
        self.tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        runs: list[Callable[[], Awaitable[None]]] = [
            self.link.run, self.outbox.run, self.outbox.checkpoints, self.publisher.run]
        self.tasks = [asyncio.create_task(run()) for run in runs]

    async def emptied(self) -> None:
        """Until every row was acknowledged and its deletion committed."""
        while self.store.samples or self.publisher.inflight:
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.outbox.close()


async def live(side: Side, rate: int, seconds: float, machines: int) -> tuple[float, float]:
    """CPU s and wall s for `rate` x `seconds` messages put in time slots."""
    loop = asyncio.get_running_loop()
    per_slot = max(1, round(rate * SLOT_S))
    slots = round(seconds / SLOT_S)
    todo = messages(per_slot * slots, machines)
    cpu, start = time.process_time(), loop.time()
    for k in range(slots):
        for message in todo[k * per_slot:(k + 1) * per_slot]:
            side.outbox.put(message)
        await asyncio.sleep(max(0.0, start + (k + 1) * SLOT_S - loop.time()))
    await side.emptied()
    return time.process_time() - cpu, loop.time() - start


async def backlog(side: Side, count: int, machines: int) -> tuple[float, float]:
    """CPU s and wall s to drain `count` messages committed while the publisher waited."""
    loop = asyncio.get_running_loop()
    side.publisher.paused = True
    for message in messages(count, machines):
        side.outbox.put(message)
    await side.outbox.commit()
    cpu, start = time.process_time(), loop.time()
    side.publisher.paused = False
    side.outbox.committed.set()
    await side.emptied()
    return time.process_time() - cpu, loop.time() - start


async def outbox_alone(tmp: Path, rate: int, seconds: float, machines: int) -> float:
    """CPU s for the outbox's part of `rate` x `seconds` messages: commits of 50 ms of
    messages (the agent's interval at this rate), each followed by the publisher's
    fetch of what it committed and the PUBACKs of the previous commit's rows."""
    store = Store(tmp / "alone.sqlite3", 10_000_000, QueueFullPolicy.DROP_OLDEST)
    outbox = Outbox(store, EdgeMetrics())
    per_commit = max(1, round(rate * 0.05))
    todo = messages(round(rate * seconds), machines)
    cursor, acked = 0, []
    cpu = time.process_time()
    for k in range(0, len(todo), per_commit):
        for message in todo[k:k + per_commit]:
            outbox.put(message)
        for row_id in acked:
            outbox.ack(row_id, True)
        await outbox.commit()
        fetched = outbox.fetch(cursor, 500)
        cursor, acked = fetched.upto, [row_id for row_id, _ in fetched.rows]
    cpu = time.process_time() - cpu
    await outbox.close()
    return cpu


async def bench(args: argparse.Namespace, port: int, tmp: Path) -> None:
    side = Side(tmp, port, args.inflight)
    side.start()
    try:
        await asyncio.wait_for(side.link.connected.wait(), 30)
        await live(side, args.rate, 1.0, args.machines)  # warm-up: topics, caches, the file
        cpu, wall = await live(side, args.rate, args.seconds, args.machines)
        sent = round(args.rate * SLOT_S) * round(args.seconds / SLOT_S)
        print(f"live:     {sent} messages at {args.rate}/s: "
              f"{cpu / sent * 1e6:.1f} us CPU per message ({wall:.1f} s)")
        if args.backlog:
            cpu, wall = await backlog(side, args.backlog, args.machines)
            print(f"backlog:  {args.backlog} messages drained at {args.backlog / wall:,.0f}/s: "
                  f"{cpu / args.backlog * 1e6:.1f} us CPU per message")
    finally:
        await side.stop()
    sent = round(args.rate * args.seconds)
    cpu = await outbox_alone(tmp, args.rate, args.seconds, args.machines)
    print(f"outbox alone: {sent} messages: {cpu / sent * 1e6:.1f} us CPU per message"
          " (commit, fetch, deletion)")
    print(f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())} (2 cores, shared)")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench publish", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=int, default=1000, help="messages per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--inflight", type=int, default=20)
    parser.add_argument("--backlog", type=int, default=20_000)
    parser.add_argument("--machines", type=int, default=1000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-publish-") as tmp:
        broker = Mosquitto(Path(tmp) / "mosquitto")
        broker.start()
        try:
            asyncio.run(bench(args, broker.port, Path(tmp)))
        finally:
            broker.stop()
