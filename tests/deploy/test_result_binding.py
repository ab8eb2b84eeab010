"""The binding the API relies on for command results (docs/api.md, "Which results
count"): under the generated ACL on a real mosquitto, only the agent that owns a machine
can publish on that machine's cmd/result topic, so the topic names the agent that
answered; the API drops a result that is not on its command's own machine topic
(tests/api/test_results.py)."""

from __future__ import annotations

from typing import Any

from shopfloor.shared import topics
from shopfloor.shared.plant import Plant
from tests.deploy.test_mosquitto_acl import NOT_AUTHORIZED, accepted, drain_until, t


def test_only_the_owning_agent_publishes_a_machines_results(site_plant: Plant,
                                                            login: Any) -> None:
    api = login("api")
    api.subscribe(topics.all_of_kind(site_plant.site.id, topics.CMD_RESULT))
    edge1, edge2 = login("edge1"), login("edge2")
    for machine in ("press1", "weld1"):  # edge1's machines
        assert edge2.publish(t(site_plant, machine, topics.CMD_RESULT)) == NOT_AUTHORIZED
    for machine in ("paint1", "pack1"):  # edge2's machines
        assert edge1.publish(t(site_plant, machine, topics.CMD_RESULT)) == NOT_AUTHORIZED
    assert api.publish(t(site_plant, "press1", topics.CMD_RESULT)) == NOT_AUTHORIZED
    own = t(site_plant, "press1", topics.CMD_RESULT)
    assert accepted(edge1.publish(own))
    assert drain_until(api.inbox, own) == [own]  # nothing forged arrived before it
