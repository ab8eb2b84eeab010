"""Alarms: rules from the plant file (`shopfloor.shared.alarm_rules`) evaluated on event
time (`debounce`), and the ISA-18.2 lifecycle of each alarm instance (`lifecycle`).
Both are pure; the component that feeds and publishes them is thin. docs/alarms.md."""
