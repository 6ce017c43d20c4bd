"""The ``botframework`` command line: serve, worker, check-config, chat, usage, login, db upgrade|prune, sign-user."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import io
import json
import logging
import sys
from collections.abc import Sequence
from typing import TextIO

from botframework import __version__
from botframework.config.loader import load_config
from botframework.config.schema import Config
from botframework.errors import BotframeworkError, ConfigError, StorageError
from botframework.startup import describe_os_error

__all__ = ["main"]


def _port(value: str) -> int:
    if not value.isdigit() or int(value) > 65535:
        raise argparse.ArgumentTypeError(f"a port is 0-65535, got {value!r}")
    return int(value)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="botframework",
        description="Multi-channel chat bot framework. Start with: botframework serve --config config/example.yaml",
    )
    p.add_argument("--version", action="version", version=f"botframework {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("serve", help="run the HTTP server for every tenant and channel")
    s.add_argument("--config", required=True, metavar="FILE", help="YAML config file")
    s.add_argument("--host", help="interface to bind (overrides server.host)")
    s.add_argument("--port", type=_port, help="TCP port, 0 for any free one (overrides server.port)")
    s.add_argument(
        "--role",
        choices=("all", "ingress"),
        default="all",
        help="all (default): accept and run turns; ingress: accept, acknowledge and relay replies only, "
        "turns run on `botframework worker` processes (PostgreSQL)",
    )

    w = sub.add_parser("worker", help="run turns from the shared queue in PostgreSQL (start as many as needed)")
    w.add_argument("--config", required=True, metavar="FILE", help="YAML config file")
    w.add_argument("--concurrency", type=int, metavar="N", help="turns run at once (overrides queue.concurrency)")

    c = sub.add_parser("check-config", help="validate a config file; one line per problem")
    c.add_argument("file", metavar="FILE")
    c.add_argument(
        "--probe",
        action="store_true",
        help="also start or reach every MCP server in mcp_servers and list its tools, and report channel sessions "
        "that need an operator (e.g. a login)",
    )

    ch = sub.add_parser("chat", help="talk to a tenant's agent in the terminal (one message per line)")
    ch.add_argument("--config", required=True, metavar="FILE")
    ch.add_argument("--tenant", required=True)
    ch.add_argument("--user", default="cli", help="conversation key; the same user continues the conversation")
    ch.add_argument("--json", action="store_true", help="one JSON object per reply line")

    u = sub.add_parser("usage", help="summarize the model-call ledger")
    u.add_argument("--config", required=True, metavar="FILE")
    u.add_argument("--tenant")
    u.add_argument("--json", action="store_true", help="a JSON array of rows")

    lg = sub.add_parser("login", help="authorize a channel that needs an interactive login (e.g. scan a QR code)")
    lg.add_argument("channel", help="the channel's key under tenants.*.channels")
    lg.add_argument("--config", required=True, metavar="FILE")
    lg.add_argument("--tenant", required=True)

    db = sub.add_parser("db", help="database maintenance")
    dbsub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    up = dbsub.add_parser("upgrade", help="apply migrations up to the latest revision")
    up.add_argument("--config", required=True, metavar="FILE")
    pr = dbsub.add_parser("prune", help="delete conversations' data older than storage.retention_days")
    pr.add_argument("--config", required=True, metavar="FILE")
    pr.add_argument("--days", type=int, metavar="N", help="override storage.retention_days")

    su = sub.add_parser("sign-user", help="print a signed web chat link query (identity: signed)")
    su.add_argument("--config", required=True, metavar="FILE")
    su.add_argument("--tenant", required=True)
    su.add_argument("--user", required=True)
    su.add_argument("--ttl", type=int, default=3600, metavar="S", help="seconds the link stays valid (default 3600)")
    return p


def _say(text: str, stream: TextIO | None = None) -> None:
    print(text, file=stream or sys.stdout, flush=True)  # sys.stdout as of now (it may be replaced)


def _configure_logging(config: Config, *, quiet: bool) -> None:
    from botframework.logs import setup_logging

    setup_logging(config)
    if quiet:
        logging.getLogger().setLevel(max(logging.WARNING, logging.getLogger().level))


async def _serve(config: Config, host: str | None, port: int | None, role: str) -> None:
    from botframework.pipeline.process import build_runtime
    from botframework.pipeline.roles import Role
    from botframework.server import serve

    runtime = build_runtime(config, Role(role))
    channels = sorted({f"{t}/{c}" for t, c in runtime.adapters})

    warm_up: list[asyncio.Task[object]] = []

    def ready(url: str) -> None:
        _say(f"botframework listening on {url} (channels: {', '.join(channels) or 'none'})")
        for (t, _c), adapter in sorted(runtime.adapters.items()):
            for what, path in adapter.pages():
                _say(f"  {what} for {t}: {url}/t/{t}/{path}")
        # Connect to the MCP servers now, in the background: a broken one is logged at start, and the
        # first turn does not wait for a server process to start.
        for agent in runtime.invocation.agents.values():
            if agent.toolset is not None:
                warm_up.append(asyncio.create_task(agent.toolset.current()))

    await serve(
        runtime,
        host=host or config.server.host,
        port=config.server.port if port is None else port,
        ready=ready,
    )


async def _worker(config: Config, concurrency: int | None) -> int:
    from botframework.pipeline.process import run_worker

    return await run_worker(config, concurrency=concurrency, ready=_say)


async def _chat(config: Config, tenant: str, user: str, as_json: bool) -> int:
    from botframework.runtime import Runtime
    from botframework.turn import Origin

    if tenant not in config.tenants:
        _say(f"error: unknown tenant {tenant!r} (configured: {', '.join(config.tenants)})", sys.stderr)
        return 2
    runtime = Runtime(config=config, channels=False)
    await runtime.start()
    if isinstance(sys.stdin, io.TextIOWrapper):
        sys.stdin.reconfigure(errors="replace")  # a stray byte is a U+FFFD, not a traceback

    class TerminalSink:
        async def delta(self, text: str) -> None:
            sys.stdout.write(text)
            sys.stdout.flush()

        async def reset(self) -> None:
            sys.stdout.write("\n[retrying]\n")
            sys.stdout.flush()

        async def notice(self, text: str) -> None:
            sys.stdout.write(f"[{text}]\n")
            sys.stdout.flush()

    try:
        while True:
            line = await asyncio.to_thread(sys.stdin.readline)
            if not line:
                break
            text = line.rstrip("\r\n")
            if not text.strip():
                continue
            try:
                reply = await runtime.ask(
                    tenant=tenant,
                    origin=Origin.channel("cli"),
                    conversation_key=user,
                    text=text,
                    sink=None if as_json else TerminalSink(),
                )
            except BotframeworkError as exc:
                if as_json:
                    _say(json.dumps({"error": type(exc).__name__, "message": str(exc)}))
                else:
                    _say(f"\nerror: {exc}")
                continue
            if as_json:
                if reply.is_error:
                    _say(json.dumps({"error": str(reply.error_kind), "message": reply.text}, ensure_ascii=False))
                else:
                    _say(
                        json.dumps(
                            {
                                "text": reply.text,
                                "model": reply.model,
                                "input_tokens": reply.input_tokens,
                                "output_tokens": reply.output_tokens,
                            },
                            ensure_ascii=False,
                        )
                    )
            elif reply.is_error:
                _say(f"\nerror ({reply.error_kind}): {reply.text}")
            else:
                _say("")
    finally:
        await runtime.stop()
    return 0


async def _probe(config: Config, file: str) -> int:
    from botframework.channel_commands import probe_channels
    from botframework.tools.mcp.probe import probe_mcp_servers

    mcp_problems, summary = await probe_mcp_servers(config)
    problems = [str(p) for p in mcp_problems] + await probe_channels(config)
    for problem in problems:
        _say(str(problem), sys.stderr)
    if problems:
        return 1
    _say(f"ok: {file} — {len(config.tenants)} tenant(s), {len(config.models)} model(s), {len(summary)} MCP server(s)")
    for line in summary:
        _say(f"  {line}")
    return 0


async def _usage(config: Config, tenant: str | None, as_json: bool) -> int:
    from storage.db import Database
    from storage.ledger import usage_summary

    db = Database(config.storage.url)
    try:
        if config.storage.auto_migrate:
            await db.upgrade()
        async with db.read() as conn:
            rows = await usage_summary(conn, tenant=tenant)
    finally:
        await db.close()
    if as_json:
        _say(json.dumps([dataclasses.asdict(r) for r in rows]))
        return 0
    if not rows:
        _say("no model calls recorded yet")
        return 0
    header = ("day", "tenant", "model", "outcome", "calls", "input_tokens", "output_tokens")
    table = [header] + [
        (r.day, r.tenant, r.model, r.outcome, str(r.calls), str(r.input_tokens), str(r.output_tokens)) for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        _say(
            "  ".join(
                cell.ljust(w) if i < 4 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    return 0


async def _db_prune(config: Config, days: int | None) -> int:
    from botframework.retention import prune
    from storage.db import Database

    days = days if days is not None else config.storage.retention_days
    if days is None or days < 1:
        _say("error: set storage.retention_days in the config, or pass --days N (N >= 1)", sys.stderr)
        return 2
    db = Database(config.storage.url)
    try:
        if config.storage.auto_migrate:
            await db.upgrade()
        counts = await prune(db, days=days)
    finally:
        await db.close()
    _say(
        f"deleted what is older than {days} day(s): {counts.turns} turn(s), {counts.messages} message(s), "
        f"{counts.events} inbound event(s), {counts.conversations} conversation(s)"
    )
    return 0


def _sign_user(config: Config, tenant: str, user: str, ttl: int) -> int:
    from botframework.identity import SignsUsers, signed_user_query
    from botframework.inputs import has_control_chars

    if tenant not in config.tenants:
        _say(f"error: unknown tenant {tenant!r} (configured: {', '.join(config.tenants)})", sys.stderr)
        return 2
    if not user or has_control_chars(user) or ttl < 1:
        _say("error: --user must be non-empty without control characters, and --ttl at least 1", sys.stderr)
        return 2
    secrets = [
        secret
        for cfg in config.tenants[tenant].channels.values()
        if isinstance(cfg, SignsUsers) and (secret := cfg.user_signing_secret()) is not None
    ]
    if len(secrets) != 1:
        _say(
            f"error: tenant {tenant!r} has {'no' if not secrets else 'several'} channel(s) with signed user links "
            "(set identity: signed and a secret on its web chat channel)",
            sys.stderr,
        )
        return 2
    _say(signed_user_query(secrets[0].get_secret_value(), tenant=tenant, user=user, ttl_s=ttl))
    return 0


async def _db_upgrade(config: Config) -> int:
    from storage.db import Database

    db = Database(config.storage.url)
    _say(f"applying migrations to {db.dialect} database ...")
    try:
        await db.upgrade()
    finally:
        await db.close()
    _say("database is at the latest revision")
    return 0


async def _login(config: Config, channel: str, tenant: str) -> int:
    from botframework.channel_commands import login_channel
    from botframework.channel_login import TextConsole
    from botframework.errors import LoginError

    try:
        await login_channel(config, channel=channel, tenant=tenant, console=TextConsole())
    except LoginError as exc:
        _say(f"login failed: {exc}", sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "check-config":
            config = load_config(args.file)
            if args.probe:
                return asyncio.run(_probe(config, args.file))
            _say(f"ok: {args.file} — {len(config.tenants)} tenant(s), {len(config.models)} model(s)")
            return 0
        config = load_config(args.config, skip_broken_plugins=args.command in ("serve", "worker"))
        if args.command in ("serve", "worker"):
            from botframework.pipeline.process import refusal
            from botframework.pipeline.roles import Role

            role = Role.WORKER if args.command == "worker" else Role(args.role)
            command = "botframework worker" if args.command == "worker" else f"serve --role {args.role}"
            refused = refusal(config, role, command=command)
            if refused is not None:
                _say(refused, sys.stderr)
                return 2
            _configure_logging(config, quiet=False)
            if args.command == "worker":
                if args.concurrency is not None and not 1 <= args.concurrency <= 1000:
                    _say("error: --concurrency is 1-1000", sys.stderr)
                    return 2
                return asyncio.run(_worker(config, args.concurrency))
            asyncio.run(_serve(config, args.host, args.port, args.role))
            return 0
        _configure_logging(config, quiet=True)
        if args.command == "chat":
            return asyncio.run(_chat(config, args.tenant, args.user, args.json))
        if args.command == "usage":
            return asyncio.run(_usage(config, args.tenant, args.json))
        if args.command == "sign-user":
            return _sign_user(config, args.tenant, args.user, args.ttl)
        if args.command == "db" and args.db_command == "prune":
            return asyncio.run(_db_prune(config, args.days))
        if args.command == "db":
            return asyncio.run(_db_upgrade(config))
        if args.command == "login":
            return asyncio.run(_login(config, args.channel, args.tenant))
    except ConfigError as exc:
        for problem in exc.problems:
            _say(str(problem), sys.stderr)
        return 1
    except StorageError as exc:
        _say(
            f"storage error: {exc}\nCheck storage.url in the config and that the database is reachable.",
            sys.stderr,
        )
        return 1
    except BotframeworkError as exc:  # start-up failures: one clear line, no traceback
        _say(f"error: {exc}", sys.stderr)
        return 1
    except OSError as exc:
        _say(f"error: {describe_os_error(exc)}", sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 2


if __name__ == "__main__":
    sys.exit(main())
