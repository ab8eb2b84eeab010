"""The collector: MQTT (telemetry, state, agent status) -> InfluxDB, acknowledged only
after it is stored.

Pipeline (one process, two threads; see docs/collector.md, "Threads and the receive
fast path"):

    network thread (paho, external loop) --closed Batch--> writer thread
      (receives; validates, dead-letters,                   (write with retry,
       accounts seq, encodes into the open batch;            hand the acks over,
       sends the PUBACKs it is handed; never acks itself)    call sinks)

Hooking in (e.g. the live OEE/WIP engine in `shopfloor.kpi`): implement
`shopfloor.collector.sinks.BatchSink`, i.e. a `on_batch(self, batch: WrittenBatch) -> None`
method, and register it with `Collector.add_sink(sink)` before `Collector.start()`.
The collector calls every sink, in registration order, from its writer thread, after each
batch has been durably written to InfluxDB and acknowledged to the broker. A batch holds
the validated messages in arrival order (`ParsedMessage`: site, line, machine or agent,
and the parsed `Telemetry` / `StatePayload` / `AgentStatus`); `batch.telemetry()` and
`batch.states()` filter by kind. Delivery is at least once: after a crash or reconnect a
message can come again, marked `duplicate=True` when its `seq` was seen before. A sink
must be quick (it runs on the write path) and must not raise; an exception is logged
(once, repeats at DEBUG) and the collector carries on.
"""
