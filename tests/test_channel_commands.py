"""``botframework login <channel>``: the CLI loads the channel by name and runs its login hook."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from botframework.channel import ChannelAdapter, Outbound
from botframework.channel_login import LoginConsole
from botframework.channel_state import ChannelState
from botframework.cli import main
from botframework.config.types import StrictModel
from botframework.errors import LoginError
from botframework.plugins import CHANNELS
from storage.channel_state import SqlChannelState
from storage.db import Database


class LoginConfig(StrictModel):
    fail: bool = False
    """Make the login fail."""


class LoginAdapter(ChannelAdapter[LoginConfig]):
    name = "logintest"
    config_model = LoginConfig
    supports_login = True

    @classmethod
    async def login(cls, *, tenant: str, config: StrictModel, state: ChannelState, console: LoginConsole) -> None:
        assert isinstance(config, LoginConfig)
        if config.fail:
            raise LoginError("the QR code expired 3 times; run the command again")
        console.say(f"scan this for {tenant}")
        await state.set("session", {"token": f"token-of-{tenant}"})

    async def deliver(self, outbound: Outbound) -> None:
        return None


class NoLoginAdapter(LoginAdapter):
    name = "nologintest"
    supports_login = False


@pytest.fixture(autouse=True)
def login_plugins() -> Iterator[None]:
    with CHANNELS.registered("logintest", LoginAdapter), CHANNELS.registered("nologintest", NoLoginAdapter):
        yield


def write_config(tmp_path: Path, db_url: str, channels: dict[str, object]) -> str:
    path = tmp_path / "bot.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "storage": {"url": db_url},
                "models": {"main": {"provider": "offline"}},
                "tenants": {
                    "acme": {"agent": {"model": "main"}, "channels": channels},
                    "globex": {"agent": {"model": "main"}, "channels": {"websocket": {}}},
                },
            }
        ),
        encoding="utf-8",
    )
    return str(path)


async def stored_session(db_url: str, tenant: str) -> object:
    db = Database(db_url)
    try:
        return await SqlChannelState(db, tenant=tenant, channel="logintest").get("session")
    finally:
        await db.close()


async def test_login_stores_the_session_of_the_tenant(
    tmp_path: Path, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, db_url, {"logintest": {}})
    assert await _main(["login", "logintest", "--config", config, "--tenant", "acme"]) == 0
    assert "scan this for acme" in capsys.readouterr().out
    assert await stored_session(db_url, "acme") == {"token": "token-of-acme"}


@pytest.mark.parametrize(
    ("channels", "args", "message"),
    [
        ({"logintest": {}}, ["logintest", "--tenant", "nobody"], "unknown tenant 'nobody'"),
        ({"logintest": {}}, ["logintest", "--tenant", "globex"], "tenant 'globex' has no 'logintest' channel"),
        ({"nologintest": {}}, ["nologintest", "--tenant", "acme"], "has no login step"),
        ({"logintest": {"fail": True}}, ["logintest", "--tenant", "acme"], "expired 3 times"),
    ],
)
async def test_login_failures_are_one_clear_line(
    tmp_path: Path,
    db_url: str,
    capsys: pytest.CaptureFixture[str],
    channels: dict[str, object],
    args: list[str],
    message: str,
) -> None:
    config = write_config(tmp_path, db_url, channels)
    assert await _main(["login", *args[:1], "--config", config, *args[1:]]) == 1
    err = capsys.readouterr().err
    assert err.startswith("login failed: ") and message in err and "Traceback" not in err


async def _main(argv: list[str]) -> int:
    """``main`` runs its own event loop: run it in a thread from this async test."""
    import asyncio

    return await asyncio.to_thread(main, argv)
