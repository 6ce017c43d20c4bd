"""The ``botframework`` command as a user runs it: subprocesses, real stdin/stdout."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.fakes import RecordedRequest, Reply
from tests.fakes.openai_server import FakeOpenAIServer

ROOT = Path(__file__).resolve().parents[1]


def run(
    *args: str, stdin: str = "", env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "botframework", *args], input=stdin, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})}, cwd=ROOT)


def offline_config(tmp_path: Path, db_url: str, **model: object) -> Path:
    path = tmp_path / "bot.yaml"
    path.write_text(yaml.safe_dump({
        "storage": {"url": db_url},
        "models": {"main": {"provider": "offline", **model}},
        "tenants": {"demo": {"agent": {"model": "main", "tools": ["clock"]}, "channels": {"websocket": {}}}},
    }), encoding="utf-8")
    return path


def test_check_config_accepts_the_example() -> None:
    result = run("check-config", "config/example.yaml")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok: config/example.yaml")


def test_check_config_names_every_problem_with_path_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("models:\n  main: {provider: offline}\ntenants:\n  acme:\n    agent: {model: mian}\n"
                   "    channels:\n      slack: {bot_token: xoxb-1}\n", encoding="utf-8")
    result = run("check-config", str(bad))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert "tenants.acme.channels.slack.signing_secret: field required (line 7)" in lines
    assert "tenants.acme.agent.model: unknown model 'mian' (defined: main) (line 5)" in lines
    assert "Traceback" not in result.stderr + result.stdout


def test_check_config_yaml_syntax_error_is_one_line_with_its_line_number(tmp_path: Path) -> None:
    bad = tmp_path / "broken.yaml"
    bad.write_text("models:\n  main: [provider: offline\n", encoding="utf-8")
    result = run("check-config", str(bad))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("<yaml>:") and "line 3" in result.stderr


def test_chat_json_offline_answers_each_line_and_runs_a_tool(tmp_path: Path, db_url: str) -> None:
    config = offline_config(tmp_path, db_url)
    result = run("chat", "--config", str(config), "--tenant", "demo", "--json",
                 stdin="hello there\nwhat time is it?\n\nbye\n")
    assert result.returncode == 0, result.stderr
    replies = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(replies) == 3
    for r in replies:
        assert {"text", "model", "input_tokens", "output_tokens"} <= r.keys() and r["model"] == "main"
        assert r["input_tokens"] > 0 and r["output_tokens"] > 0
    assert "hello there" in replies[0]["text"] and "[offline model]" in replies[0]["text"]
    assert "clock tool" in replies[1]["text"]
    usage = run("usage", "--config", str(config), "--json")
    rows = json.loads(usage.stdout)
    assert [(r["tenant"], r["model"], r["outcome"], r["calls"]) for r in rows] == [("demo", "main", "ok", 4)]
    assert set(rows[0]) == {"tenant", "model", "outcome", "calls", "input_tokens", "output_tokens", "day"}


def test_chat_keeps_the_conversation_per_user_across_runs(tmp_path: Path, db_url: str) -> None:
    config = offline_config(tmp_path, db_url)
    run("chat", "--config", str(config), "--tenant", "demo", "--user", "ann", "--json", stdin="one\n")
    run("chat", "--config", str(config), "--tenant", "demo", "--user", "ann", "--json", stdin="two\n")
    result = run("chat", "--config", str(config), "--tenant", "demo", "--user", "bob", "--json", stdin="three\n")
    assert json.loads(result.stdout)["input_tokens"] < 60, "bob must not see ann's history"


def test_chat_errors_are_json_objects_and_the_conversation_goes_on(tmp_path: Path, db_url: str) -> None:
    config = offline_config(tmp_path, db_url, context_window=512, max_output_tokens=128)
    result = run("chat", "--config", str(config), "--tenant", "demo", "--json",
                 stdin="word " * 3000 + "\nshort one\n")
    first, second = (json.loads(line) for line in result.stdout.splitlines())
    assert first["error"] == "input_too_large" and "too long" in first["message"]
    assert "short one" in second["text"]


def test_chat_unknown_tenant_is_a_clear_error(tmp_path: Path, db_url: str) -> None:
    result = run("chat", "--config", str(offline_config(tmp_path, db_url)), "--tenant", "nope", stdin="hi\n")
    assert result.returncode == 2 and "unknown tenant 'nope'" in result.stderr


async def test_chat_against_an_openai_compatible_endpoint(tmp_path: Path, db_url: str) -> None:
    def answer(request: RecordedRequest) -> Reply:
        return Reply(text=f"remote says hi to {request.messages[-1]['content']}", input_tokens=42, output_tokens=7)

    async with FakeOpenAIServer(default=answer) as fake:
        config = tmp_path / "remote.yaml"
        config.write_text(yaml.safe_dump({
            "storage": {"url": db_url},
            "models": {"main": {"provider": "openai", "model": "gpt-4o-mini", "base_url": fake.base_url,
                                "api_key": "${REMOTE_KEY}"}},
            "tenants": {"demo": {"agent": {"model": "main"}}},
        }), encoding="utf-8")
        result = await asyncio.to_thread(run, "chat", "--config", str(config), "--tenant", "demo", "--json",
                                         stdin="ann\n", env={"REMOTE_KEY": "sk-remote-secret-1"})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"text": "remote says hi to ann", "model": "main", "input_tokens": 42,
                                         "output_tokens": 7}
    assert fake.requests[0].headers["authorization"] == "Bearer sk-remote-secret-1"
    assert "sk-remote-secret-1" not in result.stderr


def test_db_upgrade_reports_progress(tmp_path: Path, db_url: str) -> None:
    result = run("db", "upgrade", "--config", str(offline_config(tmp_path, db_url)))
    assert result.returncode == 0, result.stderr
    assert "applying migrations" in result.stdout and "latest revision" in result.stdout


def test_help_lists_every_command() -> None:
    result = run("--help")
    for command in ("serve", "check-config", "chat", "usage", "db"):
        assert command in result.stdout


@pytest.mark.slow
async def test_sigterm_lets_the_in_flight_turn_finish_and_deliver(tmp_path: Path, db_url: str) -> None:
    import aiohttp

    from tests.e2e.support import ChatClient, ServerProcess, write_config

    async with FakeOpenAIServer(default=lambda r: Reply(text="slow but complete", chunks=6,
                                                        chunk_delay_s=0.3)) as fake:
        config = write_config(tmp_path / "bot.yaml", db_url=db_url, model_base_url=fake.base_url,
                              tenants={"acme": {"agent": {"model": "main"}, "channels": {"websocket": {}}}},
                              shutdown_timeout_s=20)
        server = ServerProcess(config, tmp_path / "server.log")
        await server.start()
        async with aiohttp.ClientSession() as http:
            client = await ChatClient.connect(http, server.url, "acme", "ann")
            await client.send("c1", "hello")
            await client.wait_for("delta", "c1")
            stopping = asyncio.create_task(server.stop())
            done = await client.wait_for("done", "c1", timeout=20)
            assert done["text"] == "slow but complete"
            assert await stopping == 0
            await client.close()
    log = (tmp_path / "server.log").read_text()
    assert "shutting down" in log and "sk-test-key-123456" not in log
