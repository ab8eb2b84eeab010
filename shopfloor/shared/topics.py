"""MQTT topic templates (contract version v1), UNS style:
`shopfloor/v1/{site}/{line}/{machine}/{kind}` and `shopfloor/v1/{site}/edge/{agent}/status`.
Line ids never equal "edge" in practice; the status topic has its own fixed segment."""

from __future__ import annotations

from dataclasses import dataclass

ROOT = "shopfloor/v1"
TELEMETRY = "telemetry"
STATE = "state"
CMD = "cmd"
CMD_RESULT = "cmd/result"
KPI = "kpi"
STATUS = "status"
DEAD_LETTER = "deadletter"
ALARM = "alarm"  # machine topic kind prefix: .../{machine}/alarm/{rule}
ALARMS_CMD = "alarms/cmd"  # site-level segment pair of the alarm action topics
MACHINE_KINDS = (TELEMETRY, STATE, CMD, CMD_RESULT, KPI)


def machine_topic(site: str, line: str, machine: str, kind: str) -> str:
    return f"{ROOT}/{site}/{line}/{machine}/{kind}"


def status_topic(site: str, agent: str) -> str:
    return f"{ROOT}/{site}/edge/{agent}/{STATUS}"


def dead_letter_topic(site: str, component: str) -> str:
    """Where a component republishes what it could not parse or validate."""
    return f"{ROOT}/{site}/{DEAD_LETTER}/{component}"


def line_kpi_topic(site: str, line: str) -> str:
    return f"{ROOT}/{site}/{line}/{KPI}"


def alarm_topic(site: str, line: str, machine: str, rule: str) -> str:
    """Retained state of one alarm instance (machine x rule)."""
    return f"{ROOT}/{site}/{line}/{machine}/{ALARM}/{rule}"


def all_alarms(site: str) -> str:
    """Subscription filter for every alarm instance of a site."""
    return f"{ROOT}/{site}/+/+/{ALARM}/+"


def alarm_cmd_topic(site: str) -> str:
    """People's actions on alarms (ack, shelve, unshelve): the API publishes, the alarm
    component reads. Site level, five segments: no machine or line filter matches it."""
    return f"{ROOT}/{site}/{ALARMS_CMD}"


def alarm_result_topic(site: str) -> str:
    """The alarm component's answer to each action (by its id): the API reads it."""
    return f"{ROOT}/{site}/{ALARMS_CMD}/result"


def all_of_kind(site: str, kind: str) -> str:
    """Subscription filter for one kind across a site, e.g. all telemetry."""
    return f"{ROOT}/{site}/+/+/{kind}"


@dataclass(frozen=True, slots=True)
class MachineTopic:
    site: str
    line: str
    machine: str
    kind: str


def parse_machine_topic(topic: str) -> MachineTopic | None:
    """Split a machine topic; None when the topic is not one."""
    parts = topic.split("/")
    if len(parts) < 6 or f"{parts[0]}/{parts[1]}" != ROOT:
        return None
    kind = "/".join(parts[5:])
    if kind not in MACHINE_KINDS:
        return None
    return MachineTopic(parts[2], parts[3], parts[4], kind)
