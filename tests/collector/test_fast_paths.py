"""The collector's receive fast paths give the same result as the general ones:

* `_Template` (one `str.format` per telemetry line) against the value-by-value encoder,
  for any mix of values (hypothesis), NaN, inf, huge integers and quoted strings included;
* `BufferedSocket` over a real socket pair returns exactly the bytes sent, in order,
  whatever sizes are asked for;
* `FastClient` against the real mosquitto: messages without MQTT v5 properties take the
  fast path, messages with properties take paho's own, and both are stored."""

from __future__ import annotations

import contextlib
import socket
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from shopfloor.collector.encode import Encoder
from shopfloor.collector.messages import Kind, ParsedMessage
from shopfloor.collector.fastclient import BufferedSocket
from shopfloor.shared.contract import Telemetry
from shopfloor.shared.loader import parse_plant
from shopfloor.shared.plant import Plant
from tests.collector.helpers import T0, Publisher, seqs_stored, telemetry, telemetry_topic, wait_for
from tests.harness.plants import example_data

PLANT: Plant = parse_plant(example_data(), "example")
MACHINE = "press1"
POINTS = [p.name for p in PLANT.machines[MACHINE].points]

any_value = st.one_of(
    st.booleans(),
    st.integers(),  # beyond int64 too
    st.floats(),  # NaN and inf too
    st.text(max_size=12),  # quotes, backslashes, newlines
)


def message(values: dict[str, object], quality: dict[str, str] | None = None) -> ParsedMessage:
    sample = Telemetry(ts=T0, seq=7, values=values, quality=quality or {})
    return ParsedMessage(Kind.TELEMETRY, PLANT.site.id, sample, line="line1", machine=MACHINE)


@settings(max_examples=400)
@given(st.data())
def test_template_line_equals_the_general_line(data):
    names = data.draw(st.permutations(POINTS))
    names = names[:data.draw(st.integers(1, len(names)))]
    base = telemetry(PLANT, MACHINE, 3).values
    values = {n: data.draw(st.one_of(st.just(base[n]), any_value)) for n in names}
    if data.draw(st.booleans()):
        values["not_a_point"] = 1
    encoder = Encoder(PLANT)
    sample = message(values)
    fast = encoder.encode(sample, 0.0)
    general = encoder._telemetry_general(sample, sample.payload)  # noqa: SLF001
    assert (fast.line, fast.values, fast.bad_points) == (
        general.line, general.values, general.bad_points)


def test_typical_sample_takes_the_template_and_bad_quality_the_general_path():
    encoder = Encoder(PLANT)
    values = telemetry(PLANT, MACHINE, 3).values
    assert encoder._template(MACHINE, tuple(values)) is not None  # noqa: SLF001
    with_bad = message(values, quality={POINTS[0]: "bad"})
    line = encoder.encode(with_bad, 0.0).line
    assert line is not None and f",{POINTS[0]}=" not in line.replace(" ", ",", 1)


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


def send_all(sock: socket.socket, data: bytes) -> None:
    with contextlib.suppress(OSError):  # the reader closes its end when it has enough
        sock.sendall(data)


@given(st.lists(st.integers(1, 70_000), min_size=1, max_size=40))
def test_buffered_socket_returns_the_stream_in_order(sizes):
    a, b = socket.socketpair()
    try:
        data = bytes(i % 251 for i in range(300_000))
        sender = threading.Thread(target=send_all, args=(a, data))
        sender.start()
        buffered, got = BufferedSocket(b), bytearray()
        for size in sizes:
            chunk = buffered.recv(size)
            assert 0 < len(chunk) <= size
            got += chunk
        assert bytes(got) == data[:len(got)]
        assert buffered.pending() >= 0 and buffered.fileno() == b.fileno()
        b.close()  # unblocks the sender
        sender.join(5)
    finally:
        a.close()
        b.close()


def test_buffered_socket_reports_buffered_bytes_as_pending(pair):
    a, b = pair
    a.sendall(b"x" * 1000)
    buffered = BufferedSocket(b)
    assert buffered.recv(1) == b"x"
    assert buffered.pending() == 999  # select() would not see these: they are ours
    assert buffered.recv(5000) == b"x" * 999 and buffered.pending() == 0


def test_messages_with_and_without_properties_are_stored(
    mosquitto, influxdb, make_plant, run_collector
):
    plant = make_plant(mosquitto.port, influxdb.url)
    db = plant.database.database
    collector = run_collector(plant)
    topic = telemetry_topic(plant, MACHINE)
    pub = Publisher(mosquitto.port)
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = ("origin", "test")
    props.MessageExpiryInterval = 3600
    try:
        pub.publish_many([(topic, telemetry(plant, MACHINE, seq).to_json())
                          for seq in range(1, 11)])
        for seq in range(11, 21):
            pub.client.publish(topic, telemetry(plant, MACHINE, seq).to_json(), qos=1,
                               properties=props).wait_for_publish(10)
    finally:
        pub.close()
    wait_for(lambda: len(seqs_stored(influxdb, db, MACHINE)) == 20)
    assert seqs_stored(influxdb, db, MACHINE) == list(range(1, 21))
    client = collector.subscriber.client
    assert client.fast_path_hits >= 10  # the plain ones (and retained states, if any)
    assert collector.subscriber.received - client.fast_path_hits >= 10  # paho's path
