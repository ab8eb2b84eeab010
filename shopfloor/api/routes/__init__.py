"""One router per resource; `main.py` includes them under /api/v1 (health at the root)."""
