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
from paho.mqtt._packet import decode_publish
from paho.mqtt.client import CallbackAPIVersion
from paho.mqtt.enums import MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from shopfloor.collector.encode import Encoder
from shopfloor.collector.messages import Kind, ParsedMessage
from shopfloor.shared.contract import Telemetry
from shopfloor.shared.fastclient import BufferedSocket, FastClient
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


def handle(packet: bytes, qos: int,
           manual_ack: bool = True) -> tuple[list[tuple[bytes, bytes, int, int]], bool]:
    """Run `FastClient._handle_publish` on one PUBLISH body (as paho holds it after
    reading): (what reached the fast hook, whether paho's own path ran instead)."""
    client = FastClient(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5,
                        manual_ack=manual_ack)
    fast: list[tuple[bytes, bytes, int, int]] = []
    general: list[object] = []
    client.on_publish_fast = lambda *a: fast.append(a)
    client.on_message = lambda c, u, m: general.append(m)
    client._in_packet = {"command": 0x30 | (qos << 1), "packet": bytearray(packet)}  # noqa: SLF001
    client._handle_publish()  # noqa: SLF001
    return fast, bool(general)


def publish_body(topic: bytes, payload: bytes, mid: int, qos: int, props: bytes) -> bytes:
    body = len(topic).to_bytes(2, "big") + topic
    if qos:
        body += mid.to_bytes(2, "big")
    return body + bytes([len(props)]) + props + payload


@given(st.binary(max_size=60), st.binary(max_size=200), st.integers(1, 65535),
       st.sampled_from([0, 1]), st.booleans())
def test_fast_publish_path_decodes_like_paho(topic, payload, mid, qos, with_props):
    props = b"\x02\x00\x00\x0e\x10" if with_props else b""  # message expiry 3600 s
    body = publish_body(topic, payload, mid, qos, props)
    fast, general = handle(body, qos)
    if with_props:
        assert not fast and general  # paho's own path, properties and all
        return
    expected = decode_publish(0x30 | (qos << 1), bytearray(body), MQTTProtocolVersion.MQTTv5)
    assert fast == [(expected.topic, expected.payload, expected.mid if qos else 0, qos)]
    assert not general


@given(st.binary(max_size=60), st.binary(max_size=200), st.integers(1, 65535),
       st.sampled_from([0, 1]))
def test_with_paho_acknowledging_only_qos_0_takes_the_fast_path(topic, payload, mid, qos):
    """The API's mode (paho's auto-ack): a QoS 0 message (its telemetry) takes the fast
    path; a QoS 1 message takes paho's, which sends the PUBACK the hook could not."""
    fast, general = handle(publish_body(topic, payload, mid, qos, b""), qos, manual_ack=False)
    if qos:
        assert not fast and general
    else:
        assert fast == [(topic, payload, 0, 0)] and not general


@given(st.binary(max_size=40), st.sampled_from([0, 1]))
def test_fast_publish_path_refuses_malformed_packets_as_paho_does(body, qos):
    """Whatever the bytes, either a message comes out or paho's MalformedPacket (which
    closes the connection): never another exception that would kill the loop."""
    from paho.mqtt.client import MalformedPacket

    with contextlib.suppress(MalformedPacket):
        handle(body, qos)


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


def send_all(sock: socket.socket, data: bytes) -> None:
    with contextlib.suppress(OSError):  # the reader closes its end when it has enough
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)  # end of stream: the reader's recv returns b""


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
            if not chunk:  # end of stream: everything was read
                assert bytes(got) == data
                break
            assert len(chunk) <= size
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
