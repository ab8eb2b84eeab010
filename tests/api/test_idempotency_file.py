"""The Idempotency-Key store with its SQLite answer file (a real file under tmp_path):
replay after a "restart" (a new store on the same file), fingerprint conflicts, TTL
expiry on the wall clock, `forget` leaving no row, and where the file lives."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from shopfloor.api.config import DEFAULT_STATE_DIR, settings_from_plant, state_dir_of
from shopfloor.api.errors import ConfigError, Conflict, TooManyRequests
from shopfloor.api.idempotency import FILE_NAME, AnswerFile, IdempotencyStore
from shopfloor.local.components import API_STATE_DIR_ENV
from shopfloor.local.components import api as api_component
from shopfloor.local.runner import RunDir
from shopfloor.shared.plant import Plant
from tests.harness.plants import example_data

TTL_S = 100.0
ANSWER = (200, {"status": "done", "commands": [{"id": "c1"}]})


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _store(path: Path, wall: Clock) -> IdempotencyStore:
    return IdempotencyStore(TTL_S, answers=AnswerFile.open(path, TTL_S, wall_clock=wall))


def _rows(path: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(path / FILE_NAME) as db:
        return db.execute("SELECT owner, key FROM answers").fetchall()


def test_finished_answer_is_replayed_by_a_new_store(tmp_path: Path) -> None:
    async def scenario() -> None:
        wall = Clock()
        store = _store(tmp_path, wall)
        first, future = store.begin("mes", "k1", "print-a")
        assert first
        store.finish("mes", "k1", ANSWER)
        store.close()
        restarted = _store(tmp_path, wall)
        again, replay = restarted.begin("mes", "k1", "print-a")
        assert not again and await replay == ANSWER
        with pytest.raises(Conflict) as refused:
            restarted.begin("mes", "k1", "print-b")
        assert refused.value.code == "idempotency_key_reused"
        assert restarted.begin("other-owner", "k1", "print-b")[0]  # scoped per API key
        restarted.close()

    asyncio.run(scenario())
    assert _rows(tmp_path) == [("mes", "k1")]


def test_rows_older_than_the_ttl_are_ignored_then_deleted(tmp_path: Path) -> None:
    async def scenario() -> None:
        wall = Clock()
        store = _store(tmp_path, wall)
        store.begin("mes", "old", "print-a")
        store.finish("mes", "old", ANSWER)
        store.close()
        wall.now += TTL_S + 1
        answers = AnswerFile(tmp_path / FILE_NAME, TTL_S, wall_clock=wall)
        assert answers.get("mes", "old") is None  # expired: ignored even before a purge
        answers.close()
        restarted = _store(tmp_path, wall)  # opening purges
        assert _rows(tmp_path) == []
        assert restarted.begin("mes", "old", "print-b")[0]  # acts again, no conflict
        restarted.close()

    asyncio.run(scenario())


def test_forget_leaves_no_row_and_lets_a_retry_act(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = _store(tmp_path, Clock())
        first, future = store.begin("mes", "k2", "print-a")
        assert first
        store.forget("mes", "k2", RuntimeError("broker down"))
        with pytest.raises(RuntimeError):
            await future
        assert _rows(tmp_path) == []
        assert store.begin("mes", "k2", "print-a")[0]
        store.close()

    asyncio.run(scenario())


def test_keys_answered_before_a_restart_count_and_replay(tmp_path: Path) -> None:
    """The file's keys are loaded back at start: they count toward the API key's bound
    (a restart does not reset it) and are replayed, never acted on again."""
    async def scenario() -> None:
        store = IdempotencyStore(TTL_S, capacity=2,
                                 answers=AnswerFile.open(tmp_path, TTL_S, Clock()))
        for key in ("k1", "k2"):
            assert store.begin("mes", key, f"print-{key}")[0]
            store.finish("mes", key, ANSWER)
        store.close()
        again = IdempotencyStore(TTL_S, capacity=2,
                                 answers=AnswerFile.open(tmp_path, TTL_S, Clock()))
        assert again.held("mes") == 2
        with pytest.raises(TooManyRequests) as full:
            again.begin("mes", "k3", "print-k3")
        assert int(full.value.headers["Retry-After"]) > 0
        first, replay = again.begin("mes", "k1", "print-k1")
        assert not first and await replay == ANSWER
        assert again.begin("other", "k1", "print-k1")[0]  # another API key: its own bound
        again.close()

    asyncio.run(scenario())


def test_unusable_folder_is_a_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="api.state_dir"):
        AnswerFile.open(blocker / "state", TTL_S)


def test_state_dir_from_plant_file_environment_or_default(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = example_data()
    data["api"]["dev_mode"] = True
    monkeypatch.delenv("SHOPFLOOR_API_STATE_DIR", raising=False)
    assert state_dir_of(settings_from_plant(Plant.model_validate(data))) == DEFAULT_STATE_DIR
    data["api"]["state_dir"] = str(tmp_path / "from-file")
    plant = Plant.model_validate(data)
    assert state_dir_of(settings_from_plant(plant)) == tmp_path / "from-file"
    monkeypatch.setenv("SHOPFLOOR_API_STATE_DIR", str(tmp_path / "from-env"))
    assert state_dir_of(settings_from_plant(plant)) == tmp_path / "from-env"


def test_local_run_puts_the_api_state_under_the_run_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(API_STATE_DIR_ENV, raising=False)
    data = example_data()
    run = RunDir(tmp_path / "run")
    [component] = api_component(Plant.model_validate(data), tmp_path / "plant.yaml", run)
    assert component.env == {API_STATE_DIR_ENV: str(tmp_path / "run" / "data" / "api")}
    data["api"]["state_dir"] = "elsewhere"
    [component] = api_component(Plant.model_validate(data), tmp_path / "plant.yaml", run)
    assert component.env == {}
