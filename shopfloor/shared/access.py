"""Who publishes and who subscribes what on the broker: the one table of MQTT access,
per component. `shopfloor mosquitto-acl` (deploy/mosquitto.py) grants exactly this and
nothing else; tests/deploy/test_components_acl.py runs every component against it and
checks that every topic a component publishes arrives.

- edge agent (user = agent id): publishes its machines' telemetry, state and cmd/result,
  its status and the edge dead letters; subscribes to its machines' cmd.
- collector: publishes machine and line kpi and the collector dead letters; subscribes
  to telemetry, state and status.
- api: publishes cmd and the alarm actions (alarms/cmd); subscribes to state, telemetry,
  cmd/result, status, machine kpi (the operator page) and the alarm actions' results.
- alarms (the rule engine, docs/alarms.md): publishes the alarm topics (retained) and the
  results of alarm actions; subscribes to the alarm topics (to restore itself after a
  restart), to state, to status and to the alarm actions, which only the API may send.
- observer (people, tools): publishes nothing; subscribes to the site's whole tree (dead
  letters included).

Client ids follow user names (`client_id_of`): the broker binds a client id to the user
that logs in (mosquitto `use_username_as_clientid`), so one component's credentials
cannot take over another's persistent session.
"""

from __future__ import annotations

from dataclasses import dataclass

from shopfloor.shared import topics
from shopfloor.shared.plant import Broker, Plant

PUBLISH, SUBSCRIBE = "write", "read"  # mosquitto's words for them in an ACL file
EDGE_MACHINE_PUBLISHES = (topics.TELEMETRY, topics.STATE, topics.CMD_RESULT)
EDGE, COLLECTOR = "edge", "collector"  # dead-letter topic names of the components


@dataclass(frozen=True, slots=True)
class Grant:
    """One right: `access` (PUBLISH or SUBSCRIBE) on a topic or topic filter."""

    access: str
    topic: str


def client_id_of(broker: Broker, default: str) -> str:
    """A component's MQTT client id: its broker user name when it logs in (the broker
    binds the two, so its persistent session is keyed by the user), else `default`."""
    return broker.username or default


def _machine(plant: Plant, machine_id: str, kind: str) -> str:
    return topics.machine_topic(plant.site.id, plant.machines[machine_id].line, machine_id, kind)


def edge_agent(plant: Plant, agent_id: str) -> list[Grant]:
    """One edge agent: exactly its machines, its status topic and the edge dead letters."""
    agent = plant.agent(agent_id)
    if agent is None:
        raise KeyError(agent_id)
    site = plant.site.id
    grants: list[Grant] = []
    for machine_id in agent.machines:
        grants += [Grant(PUBLISH, _machine(plant, machine_id, kind))
                   for kind in EDGE_MACHINE_PUBLISHES]
        grants.append(Grant(SUBSCRIBE, _machine(plant, machine_id, topics.CMD)))
    grants.append(Grant(PUBLISH, topics.status_topic(site, agent_id)))
    grants.append(Grant(PUBLISH, topics.dead_letter_topic(site, EDGE)))
    return grants


def collector(plant: Plant) -> list[Grant]:
    site = plant.site.id
    return [
        Grant(SUBSCRIBE, topics.all_of_kind(site, topics.TELEMETRY)),
        Grant(SUBSCRIBE, topics.all_of_kind(site, topics.STATE)),
        Grant(SUBSCRIBE, topics.status_topic(site, "+")),
        Grant(PUBLISH, topics.all_of_kind(site, topics.KPI)),
        Grant(PUBLISH, topics.line_kpi_topic(site, "+")),
        Grant(PUBLISH, topics.dead_letter_topic(site, COLLECTOR)),
    ]


def api(plant: Plant) -> list[Grant]:
    site = plant.site.id
    return [
        Grant(SUBSCRIBE, topics.all_of_kind(site, topics.STATE)),
        Grant(SUBSCRIBE, topics.all_of_kind(site, topics.TELEMETRY)),
        Grant(SUBSCRIBE, topics.all_of_kind(site, topics.CMD_RESULT)),
        Grant(SUBSCRIBE, topics.status_topic(site, "+")),
        Grant(SUBSCRIBE, topics.all_of_kind(site, topics.KPI)),  # the operator page's tiles
        Grant(PUBLISH, topics.all_of_kind(site, topics.CMD)),
        Grant(PUBLISH, topics.alarm_cmd_topic(site)),
        Grant(SUBSCRIBE, topics.alarm_result_topic(site)),
    ]


def alarms(plant: Plant) -> list[Grant]:
    site = plant.site.id
    return [
        Grant(SUBSCRIBE, topics.all_of_kind(site, topics.STATE)),
        Grant(SUBSCRIBE, topics.status_topic(site, "+")),
        Grant(SUBSCRIBE, topics.all_of_kind(site, topics.KPI)),  # coverage, shift KPIs
        Grant(SUBSCRIBE, topics.line_kpi_topic(site, "+")),  # buffer WIP
        Grant(SUBSCRIBE, topics.all_alarms(site)),
        Grant(PUBLISH, topics.all_alarms(site)),
        Grant(SUBSCRIBE, topics.alarm_cmd_topic(site)),
        Grant(PUBLISH, topics.alarm_result_topic(site)),
    ]


def observer(plant: Plant) -> list[Grant]:
    """Read-only, the whole site: for people and tools (`mosquitto_sub`), e.g. to watch
    dead letters, which no component consumes."""
    return [Grant(SUBSCRIBE, f"{topics.ROOT}/{plant.site.id}/#")]
