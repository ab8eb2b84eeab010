"""One router per resource; `main.py` includes them under /api/v1 (health at the root)."""

# Each versioned router carries the prefix itself, so that a route's own path template
# is its full path (the metrics label requests by it).
PREFIX = "/api/v1"
