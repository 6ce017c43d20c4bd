"""Security-facing commands and start-up failures, run as a user runs them (subprocesses)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs

import pytest
import yaml
from sqlalchemy import func, select, update

from botframework.identity import verify_signed_user
from botframework.messages import Message
from botframework.states import TurnStatus
from storage.conversations import append_messages, get_or_create_conversation
from storage.db import Database
from storage.tables import MESSAGES, TURNS
from storage.turns import create_turn, set_turn_status
from tests.test_cli import run

SECRET = "a-site-secret-of-enough-length"


def _config(tmp_path: Path, db_url: str, *, websocket: dict[str, object] | None = None, **top: object) -> Path:
    path = tmp_path / "bot.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "storage": {"url": db_url},
                "models": {"main": {"provider": "offline"}},
                "tenants": {"demo": {"agent": {"model": "main"}, "channels": {"websocket": websocket or {}}}},
                **top,
            }
        ),
        encoding="utf-8",
    )
    return path


def test_sign_user_prints_a_query_the_server_accepts(tmp_path: Path, db_url: str) -> None:
    config = _config(tmp_path, db_url, websocket={"identity": "signed", "secret": SECRET})
    result = run("sign-user", "--config", str(config), "--tenant", "demo", "--user", "alice", "--ttl", "600")
    assert result.returncode == 0, result.stderr
    query = {k: v[0] for k, v in parse_qs(result.stdout.strip()).items()}
    assert query["user"] == "alice"
    assert 590 <= int(query["expires"]) - time.time() <= 601
    verify_signed_user(SECRET, tenant="demo", user="alice", expires=query["expires"], sig=query["sig"])


def test_sign_user_without_a_signed_channel_is_a_clear_error(tmp_path: Path, db_url: str) -> None:
    result = run("sign-user", "--config", str(_config(tmp_path, db_url)), "--tenant", "demo", "--user", "alice")
    assert result.returncode == 2
    assert "identity: signed" in result.stderr and "Traceback" not in result.stderr


def test_a_busy_port_is_one_clear_line(tmp_path: Path, db_url: str) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run("serve", "--config", str(_config(tmp_path, db_url)), "--port", str(port))
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 is in use; pass --port" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--host", "192.0.2.1"], "is not an address of this machine"),  # TEST-NET-1: never local
        (["--port", "70000"], "port"),
    ],
)
def test_other_start_up_failures_are_one_clear_line(tmp_path: Path, db_url: str, args: list[str], words: str) -> None:
    result = run("serve", "--config", str(_config(tmp_path, db_url)), *args)
    assert result.returncode != 0
    assert words in result.stderr and "Traceback" not in result.stderr


def test_an_unwritable_database_path_is_one_clear_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    config = _config(tmp_path, f"sqlite+aiosqlite:///{blocker}/sub/bot.db")
    result = run("serve", "--config", str(config))
    assert result.returncode == 1
    assert "error:" in result.stderr and "Traceback" not in result.stderr


async def test_db_prune_deletes_finished_turns_older_than_the_retention(tmp_path: Path, db_url: str) -> None:
    db = Database(db_url)
    await db.upgrade()
    old = datetime.now(UTC) - timedelta(days=40)
    try:
        async with db.write() as conn:
            cid = await get_or_create_conversation(conn, tenant="demo", channel="websocket", key="ann")
            for turn_id, text in (("old-turn", "from long ago"), ("new-turn", "from today"), ("open-turn", "open")):
                await create_turn(conn, turn_id=turn_id, conversation_id=cid, tenant="demo", origin="websocket")
                await append_messages(
                    conn, conversation_id=cid, turn_id=turn_id, items=[(Message.user(text), 3)], turn_start=True
                )
                if turn_id != "open-turn":
                    await set_turn_status(conn, turn_id, TurnStatus.DONE)
            await conn.execute(update(TURNS).where(TURNS.c.id.in_(["old-turn", "open-turn"])).values(created_at=old))
            await conn.execute(update(MESSAGES).where(MESSAGES.c.turn_id == "old-turn").values(created_at=old))
    finally:
        await db.close()
    config = _config(tmp_path, db_url, storage={"url": db_url, "retention_days": 30})
    result = run("db", "prune", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert "1 turn(s), 1 message(s)" in result.stdout
    db = Database(db_url)
    try:
        async with db.read() as conn:
            left = (await conn.execute(select(MESSAGES.c.turn_id).order_by(MESSAGES.c.id))).scalars().all()
            turns = (await conn.execute(select(func.count()).select_from(TURNS))).scalar_one()
    finally:
        await db.close()
    assert left == ["new-turn", "open-turn"]  # an open turn is kept whatever its age
    assert turns == 2


def test_db_prune_needs_a_retention(tmp_path: Path, db_url: str) -> None:
    result = run("db", "prune", "--config", str(_config(tmp_path, db_url)))
    assert result.returncode == 2 and "retention_days" in result.stderr


def test_chat_survives_bytes_that_are_not_utf8(tmp_path: Path, db_url: str) -> None:
    config = _config(tmp_path, db_url)
    result = subprocess.run(
        [sys.executable, "-m", "botframework", "chat", "--config", str(config), "--tenant", "demo", "--json"],
        input=b"hello \xff there\nsecond\n",
        capture_output=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    lines = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert len(lines) == 2 and "\ufffd" in lines[0]["text"]
    assert b"Traceback" not in result.stderr
