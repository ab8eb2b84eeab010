"""Alarm notifications: webhooks delivered at least once from a durable queue, and
escalations of alarms left unacknowledged. docs/alarms.md, "Webhooks"."""
