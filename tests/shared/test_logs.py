"""setup_logging: library loggers at WARNING, ours at the chosen level; a log file given
by SHOPFLOOR_LOG_FILE is rotated."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = """
import logging
from shopfloor.shared import logs
logs.LOG_FILE_BYTES = 2000
logs.setup_logging()
for i in range(200):
    logging.getLogger("httpx").info("HTTP Request: POST /write %d", i)
    logging.getLogger("shopfloor.collector").info("stored batch %d", i)
logging.getLogger("httpx").warning("library warning")
"""


def test_library_info_is_silent_ours_is_kept_and_the_file_rotates(tmp_path: Path) -> None:
    log = tmp_path / "collector.log"
    env = {**os.environ, "SHOPFLOOR_LOG_FILE": str(log)}
    env.pop("SHOPFLOOR_LOG_LEVEL", None)
    subprocess.run([sys.executable, "-c", SCRIPT], env=env, check=True, timeout=60)
    files = sorted(tmp_path.glob("collector.log*"))
    assert [f.name for f in files] == ["collector.log", "collector.log.1", "collector.log.2",
                                       "collector.log.3"]
    assert all(f.stat().st_size <= 2200 for f in files)
    text = "".join(f.read_text() for f in files)
    assert "HTTP Request" not in text
    assert "stored batch 199" in text and "library warning" in text
