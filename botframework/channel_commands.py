"""Command-line operations on channel plugins: ``login`` and the channel part of ``check-config --probe``.

Neither names a channel: the plugin is loaded by the name the operator typed (or the config uses),
and does its part through the channel contract (:meth:`ChannelAdapter.login
<botframework.channel.ChannelAdapter.login>`, :meth:`ChannelAdapter.probe
<botframework.channel.ChannelAdapter.probe>`), with its state in the configured database.
"""

from __future__ import annotations

from botframework.channel_login import LoginConsole
from botframework.config.schema import Config
from botframework.config.sections import UnavailablePlugin
from botframework.errors import LoginError
from botframework.plugins import CHANNELS

__all__ = ["login_channel", "probe_channels"]


async def login_channel(config: Config, *, channel: str, tenant: str, console: LoginConsole) -> None:
    """Run ``channel``'s interactive login for ``tenant`` and keep the session in the database.

    Raises LoginError (unknown tenant, channel not enabled for it, no login step, or the login
    itself failed) with a message that says what to do.
    """
    from storage.channel_state import SqlChannelState
    from storage.db import Database

    if tenant not in config.tenants:
        raise LoginError(f"unknown tenant {tenant!r} (configured: {', '.join(config.tenants) or 'none'})")
    options = config.tenants[tenant].channels.get(channel)
    if options is None:
        enabled = ", ".join(config.tenants[tenant].channels) or "none"
        raise LoginError(
            f"tenant {tenant!r} has no {channel!r} channel (enabled: {enabled}); "
            f"add tenants.{tenant}.channels.{channel} to the config first"
        )
    if isinstance(options, UnavailablePlugin):
        raise LoginError(f"tenants.{tenant}.channels.{channel}: {options.problem}")
    adapter = CHANNELS.load(channel)
    if not adapter.supports_login:
        raise LoginError(f"the {channel} channel has no login step; its credentials go in the config file")
    db = Database(config.storage.url)
    try:
        if config.storage.auto_migrate:
            await db.upgrade()
        state = SqlChannelState(db, tenant=tenant, channel=channel)
        await adapter.login(tenant=tenant, config=options, state=state, console=console)
    finally:
        await db.close()


async def probe_channels(config: Config) -> list[str]:
    """One line per enabled channel that is not ready (``tenants.T.channels.C: status: detail``).

    Only reads what the channels keep in the database: a probe never connects in a way that would
    disturb a running server (a long connection has one holder, a long poll one reader).
    """
    from storage.channel_state import SqlChannelState
    from storage.db import Database

    problems: list[str] = []
    enabled = [
        (tenant, channel, options)
        for tenant, tenant_config in config.tenants.items()
        for channel, options in tenant_config.channels.items()
        if not isinstance(options, UnavailablePlugin)  # check-config already reports it
    ]
    if not enabled:
        return problems  # nothing to read: the database is not opened (nor created, nor migrated)
    db = Database(config.storage.url)
    try:
        if config.storage.auto_migrate:
            await db.upgrade()
        for tenant, channel, options in enabled:
            adapter = CHANNELS.load(channel)
            state = SqlChannelState(db, tenant=tenant, channel=channel)
            health = await adapter.probe(tenant=tenant, config=options, state=state)
            if not health.ok:
                problems.append(f"tenants.{tenant}.channels.{channel}: {health.status}: {health.detail}")
    finally:
        await db.close()
    return problems
