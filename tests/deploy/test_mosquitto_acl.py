"""Generated ACLs and access config enforced by a real mosquitto (password file made by
mosquitto_passwd): an edge agent publishes only its own machines' topics and reads only
their commands; collector and API get what they need and no more; a client id is bound to
its user name. Every component against the ACL: test_components_acl.py."""

from __future__ import annotations

import queue

import pytest

from shopfloor.deploy.mosquitto import Users, acl_file
from shopfloor.shared import access, topics
from shopfloor.shared.plant import Plant

NOT_AUTHORIZED = 0x87


def accepted(reason_code: int) -> bool:
    """PUBACK success codes are below 0x80 (0x10 "no matching subscribers" included)."""
    return reason_code < 0x80


def t(plant: Plant, machine: str, kind: str) -> str:
    return topics.machine_topic(plant.site.id, plant.machines[machine].line, machine, kind)


def drain_until(inbox: queue.Queue[tuple[str, bytes]], topic: str) -> list[str]:
    """Topics received up to and including `topic` (the marker published last)."""
    seen: list[str] = []
    while True:
        received, _ = inbox.get(timeout=5)
        seen.append(received)
        if received == topic:
            return seen


def test_agent_publishes_own_machines_only(site_plant: Plant, login) -> None:
    collector = login("collector")
    collector.subscribe(topics.all_of_kind(site_plant.site.id, topics.TELEMETRY))
    edge1 = login("edge1")

    assert edge1.publish(t(site_plant, "paint1", topics.TELEMETRY)) == NOT_AUTHORIZED
    assert edge1.publish(t(site_plant, "paint1", topics.STATE)) == NOT_AUTHORIZED
    assert edge1.publish(topics.status_topic(site_plant.site.id, "edge2")) == NOT_AUTHORIZED
    own = t(site_plant, "press1", topics.TELEMETRY)
    assert accepted(edge1.publish(own))
    assert drain_until(collector.inbox, own) == [own]


def test_agent_reads_only_its_own_commands(site_plant: Plant, login) -> None:
    edge1 = login("edge1")
    other, own = t(site_plant, "paint1", topics.CMD), t(site_plant, "press1", topics.CMD)
    # mosquitto 2.0 grants any subscription and checks read access per message
    # delivered, so even a site-wide filter gets only the agent's own commands.
    edge1.subscribe(other, own, topics.all_of_kind(site_plant.site.id, topics.CMD))

    api = login("api")
    assert accepted(api.publish(other))
    assert accepted(api.publish(own))
    assert drain_until(edge1.inbox, own) == [own]


def test_agent_cannot_give_commands(site_plant: Plant, login) -> None:
    edge2 = login("edge2")
    edge2.subscribe(t(site_plant, "paint1", topics.CMD))
    edge1 = login("edge1")
    assert edge1.publish(t(site_plant, "paint1", topics.CMD)) == NOT_AUTHORIZED
    assert edge1.publish(t(site_plant, "press1", topics.CMD)) == NOT_AUTHORIZED
    with pytest.raises(queue.Empty):
        edge2.inbox.get(timeout=0.3)


def test_collector_and_api_get_exactly_their_part(site_plant: Plant, login) -> None:
    site = site_plant.site.id
    collector, api = login("collector"), login("api")
    assert accepted(collector.publish(t(site_plant, "press1", topics.KPI)))
    assert accepted(collector.publish(topics.line_kpi_topic(site, "line1")))
    assert accepted(collector.publish(topics.dead_letter_topic(site, "collector")))
    assert collector.publish(topics.dead_letter_topic(site, "edge")) == NOT_AUTHORIZED
    assert collector.publish(t(site_plant, "press1", topics.CMD)) == NOT_AUTHORIZED
    assert collector.publish(t(site_plant, "press1", topics.TELEMETRY)) == NOT_AUTHORIZED
    assert accepted(api.publish(t(site_plant, "press1", topics.CMD)))
    assert api.publish(t(site_plant, "press1", topics.TELEMETRY)) == NOT_AUTHORIZED
    assert api.publish(t(site_plant, "press1", topics.STATE)) == NOT_AUTHORIZED

    collector.subscribe(t(site_plant, "press1", topics.CMD), topics.all_of_kind(site, "#"))
    api.subscribe(topics.all_of_kind(site, "#"))
    edge1 = login("edge1")
    sent = [t(site_plant, "press1", kind) for kind in (topics.STATE, topics.CMD_RESULT)]
    sent.append(topics.status_topic(site, "edge1"))
    for topic in sent:
        assert accepted(edge1.publish(topic))
    assert accepted(api.publish(t(site_plant, "press1", topics.CMD)))
    kpi = t(site_plant, "press1", topics.KPI)
    assert accepted(collector.publish(kpi))
    last = t(site_plant, "press1", topics.TELEMETRY)
    assert accepted(edge1.publish(last))
    assert drain_until(collector.inbox, last) == [sent[0], sent[2], last]
    assert drain_until(api.inbox, last) == [*sent, kpi, last]  # kpi: the operator page


def test_wrong_password_and_anonymous_are_refused(login) -> None:
    assert login("edge1", "wrong").reason.is_failure
    assert login(None).reason.is_failure


def test_acl_lists_every_agent_and_no_foreign_machine(site_plant: Plant) -> None:
    text = acl_file(site_plant)
    assert "user edge1\n" in text and "user edge2\n" in text
    edge1_topics = {grant.topic for grant in access.edge_agent(site_plant, "edge1")}
    assert not any("/paint1/" in x or "/pack1/" in x for x in edge1_topics)


def test_edge_may_publish_its_dead_letters_and_observers_read_them(site_plant: Plant,
                                                                   login) -> None:
    site = site_plant.site.id
    observer = login("observer")
    observer.subscribe(f"{topics.ROOT}/{site}/#")
    letters = topics.dead_letter_topic(site, "edge")
    assert accepted(login("edge1").publish(letters))
    assert drain_until(observer.inbox, letters) == [letters]
    assert observer.publish(letters) == NOT_AUTHORIZED


SESSION = {"clean_start": False, "session_expiry_s": 3600}


def test_client_ids_are_bound_to_user_names(site_plant: Plant, login) -> None:
    """Another user's credentials with the collector's client id take over neither its live
    connection nor the session the broker keeps (and queues into) while it is away."""
    site = site_plant.site.id
    collector = login("collector", client_id="collector", **SESSION)
    collector.subscribe(topics.all_of_kind(site, topics.TELEMETRY))
    intruder = login("edge2", client_id="collector")  # a clean start: would wipe the session
    assert not intruder.reason.is_failure
    edge1 = login("edge1")
    live = t(site_plant, "press1", topics.TELEMETRY)
    assert accepted(edge1.publish(live))
    assert drain_until(collector.inbox, live) == [live]
    assert not collector.dropped.is_set()

    collector.close()
    queued = t(site_plant, "weld1", topics.TELEMETRY)
    assert accepted(edge1.publish(queued))
    login("edge2", client_id="collector")
    back = login("collector", client_id="collector", **SESSION)
    assert drain_until(back.inbox, queued) == [queued]


def test_one_user_per_role(site_plant: Plant) -> None:
    with pytest.raises(ValueError, match="edge1"):
        acl_file(site_plant, Users(apis=("api", "edge1")))
    two = acl_file(site_plant, Users(apis=("api", "api2"), collectors=("c1", "c2")))
    assert all(f"user {u}\n" in two for u in ("api", "api2", "c1", "c2", "observer"))


def test_only_the_alarm_engine_publishes_alarms(site_plant: Plant, login) -> None:
    site = site_plant.site.id
    alarm = topics.alarm_topic(site, "line1", "press1", "machine_stopped")
    observer = login("observer")
    observer.subscribe(topics.all_alarms(site))
    for user in ("edge1", "collector", "api"):
        assert login(user).publish(alarm) == NOT_AUTHORIZED, user
    alarms = login("alarms")
    alarms.subscribe(topics.all_of_kind(site, topics.STATE), topics.all_alarms(site))
    assert alarms.publish(t(site_plant, "press1", topics.STATE)) == NOT_AUTHORIZED
    assert accepted(alarms.publish(alarm))
    assert drain_until(observer.inbox, alarm) == [alarm]
    assert drain_until(alarms.inbox, alarm) == [alarm]
