"""`shopfloor local up/down`: the whole system on one machine, for trials and development."""
