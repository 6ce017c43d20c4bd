"""Plugins: channels, model providers, tools and hooks that any installed distribution can add.

A distribution declares entry points in one of four groups; the entry-point name is what a config
file writes::

    botframework.channels    tenants.*.channels.<name>    a ChannelAdapter subclass
    botframework.providers   models.*.provider: <name>     a ModelClient subclass
    botframework.tools       agent.tools: [<name>]         a Tool
    botframework.hooks       agent.hooks: [<name>]         a TurnHooks subclass or instance

The shipped channels and providers register exactly the same way (see ``pyproject.toml``), so the
core never names one. Listing a group reads only distribution metadata; a plugin is imported when a
config first uses it, so an installed but unused plugin costs nothing and cannot break start-up.

Failures name the plugin and the distribution that ships it: a plugin that does not import, that
is not the kind of object its group expects, or whose name two distributions claim, raises a
:class:`~botframework.errors.PluginError` that says which, and what to do.

Code that embeds botframework (and tests) may :meth:`PluginGroup.register` an object directly.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from botframework.errors import PluginError

if TYPE_CHECKING:
    from botframework.channel import ChannelAdapter
    from botframework.hooks import TurnHooks
    from botframework.models.base import ModelClient
    from botframework.tools.base import Tool

__all__ = [
    "CHANNELS",
    "HOOKS",
    "PROVIDERS",
    "TOOLS",
    "PluginGroup",
    "PluginSource",
]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PluginSource:
    """Where a plugin comes from: an entry point of a distribution, or code that registered it."""

    name: str
    value: str
    """``module:attribute`` of an entry point, or ``<registered>``."""
    distribution: str
    """``name version`` of the distribution that declares it (``<registered>`` for in-process ones)."""

    def describe(self) -> str:
        return f"{self.value} from distribution {self.distribution}"


def _distribution(ep: EntryPoint) -> str:
    dist = ep.dist
    if dist is None:
        return "<unknown distribution>"
    return f"{dist.metadata['Name']} {dist.version}"


class PluginGroup(Generic[T]):
    """One entry-point group: lists names without importing, loads one name on demand, caches it."""

    def __init__(self, *, group: str, kind: str, check: Callable[[str, Any], T]) -> None:
        """``kind`` names the plugin kind in messages ("channel"); ``check`` turns the loaded object into
        a ``T`` or raises TypeError saying what it should have been."""
        self.group = group
        self.kind = kind
        self._check = check
        self._lock = threading.Lock()
        self._sources: dict[str, list[PluginSource]] | None = None
        self._loaded: dict[str, T] = {}
        self._registered: dict[str, T] = {}

    def _scan(self) -> dict[str, list[PluginSource]]:
        with self._lock:
            if self._sources is None:
                found: dict[str, list[PluginSource]] = {}
                for ep in entry_points(group=self.group):
                    source = PluginSource(name=ep.name, value=ep.value, distribution=_distribution(ep))
                    known = found.setdefault(ep.name, [])
                    if all(s.value != source.value for s in known):  # a dist seen twice on sys.path
                        known.append(source)
                self._sources = found
            return self._sources

    def refresh(self) -> None:
        """Forget what was listed and loaded (after installing a distribution at run time)."""
        with self._lock:
            self._sources = None
            self._loaded.clear()

    def names(self) -> list[str]:
        """Every available name, installed or registered, sorted."""
        return sorted({*self._scan(), *self._registered})

    def sources(self, name: str) -> list[PluginSource]:
        if name in self._registered:
            return [PluginSource(name=name, value="<registered>", distribution="<registered>")]
        return list(self._scan().get(name, ()))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self._registered or name in self._scan())

    def load(self, name: str) -> T:
        """The plugin called ``name``. Raises PluginError (unknown, conflicting, broken)."""
        if name in self._registered:
            return self._registered[name]
        if name in self._loaded:
            return self._loaded[name]
        sources = self._scan().get(name)
        if not sources:
            available = ", ".join(self.names()) or "none installed"
            raise PluginError(
                f"unknown {self.kind} {name!r} (available: {available}; a {self.kind} from another package "
                f"must be installed in this environment and declare the entry point group {self.group!r})",
                name=name,
                group=self.group,
            )
        if len(sources) > 1:
            claims = "; ".join(s.describe() for s in sorted(sources, key=lambda s: s.distribution))
            raise PluginError(
                f"{len(sources)} installed distributions claim the {self.kind} {name!r}: {claims}. "
                "Uninstall all but one.",
                name=name,
                group=self.group,
            )
        [source] = sources
        module_name, _, attr = source.value.partition(":")
        try:
            obj: Any = importlib.import_module(module_name.strip())
            for part in attr.strip().split(".") if attr else ():
                obj = getattr(obj, part)
        except Exception as exc:
            raise PluginError(
                f"the {self.kind} {name!r} ({source.describe()}) failed to import: {type(exc).__name__}: {exc}. "
                f"Reinstall or fix that distribution, or remove {name!r} from the config.",
                name=name,
                group=self.group,
                distribution=source.distribution,
            ) from exc
        try:
            plugin = self._check(name, obj)
        except TypeError as exc:
            raise PluginError(
                f"the {self.kind} {name!r} ({source.describe()}) is not usable: {exc}",
                name=name,
                group=self.group,
                distribution=source.distribution,
            ) from exc
        self._loaded[name] = plugin
        return plugin

    def register(self, name: str, plugin: Any, *, replace: bool = False) -> None:
        """Add a plugin from code. A name an installed distribution already claims needs ``replace``."""
        if not replace and (name in self._registered or name in self._scan()):
            where = "; ".join(s.describe() for s in self.sources(name))
            raise PluginError(
                f"the {self.kind} {name!r} is already provided ({where}); pass replace=True to override it",
                name=name,
                group=self.group,
            )
        self._registered[name] = self._check(name, plugin)

    def unregister(self, name: str) -> None:
        self._registered.pop(name, None)

    @contextmanager
    def registered(self, name: str, plugin: Any, *, replace: bool = False) -> Iterator[None]:
        """``register`` for the duration of a ``with`` block (tests)."""
        previous = self._registered.get(name)
        self.register(name, plugin, replace=replace or previous is not None)
        try:
            yield
        finally:
            if previous is None:
                self.unregister(name)
            else:
                self._registered[name] = previous


def _check_channel(name: str, obj: Any) -> Any:
    from botframework.channel import ChannelAdapter

    if not (isinstance(obj, type) and issubclass(obj, ChannelAdapter)):
        raise TypeError(f"expected a ChannelAdapter subclass, got {obj!r}")
    declared = obj.__dict__.get("name") or getattr(obj, "name", None)
    if declared != name:
        raise TypeError(f"{obj.__qualname__}.name is {declared!r}, but it is registered as {name!r}")
    config_model = getattr(obj, "config_model", None)
    from pydantic import BaseModel

    if not (isinstance(config_model, type) and issubclass(config_model, BaseModel)):
        raise TypeError(f"{obj.__qualname__}.config_model must be a pydantic model class, got {config_model!r}")
    return obj


def _check_provider(name: str, obj: Any) -> Any:
    from botframework.models.base import ModelClient

    if not (isinstance(obj, type) and issubclass(obj, ModelClient)):
        raise TypeError(f"expected a ModelClient subclass, got {obj!r}")
    return obj


def _check_tool(name: str, obj: Any) -> Any:
    from botframework.tools.base import Tool

    if not isinstance(obj, Tool):
        raise TypeError(f"expected a botframework Tool (made with @tool), got {type(obj).__name__}")
    return obj


def _check_hooks(name: str, obj: Any) -> Any:
    from botframework.hooks import TurnHooks

    if isinstance(obj, type) and issubclass(obj, TurnHooks):
        return obj
    if isinstance(obj, TurnHooks):
        return obj
    raise TypeError(f"expected a TurnHooks subclass or instance, got {type(obj).__name__}")


CHANNELS: PluginGroup[type[ChannelAdapter[Any]]] = PluginGroup(
    group="botframework.channels", kind="channel", check=_check_channel
)
"""Channel adapters (``type[ChannelAdapter]``) by their key under ``tenants.*.channels``."""
PROVIDERS: PluginGroup[type[ModelClient]] = PluginGroup(
    group="botframework.providers", kind="model provider", check=_check_provider
)
"""Model providers (``type[ModelClient]``) by ``models.*.provider``."""
TOOLS: PluginGroup[Tool] = PluginGroup(group="botframework.tools", kind="tool", check=_check_tool)
"""Tools by name."""
HOOKS: PluginGroup[type[TurnHooks] | TurnHooks] = PluginGroup(
    group="botframework.hooks", kind="hook", check=_check_hooks
)
"""Turn hooks by name."""
