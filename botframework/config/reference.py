"""Generate ``config/reference.yaml`` from the schema, so the documented reference cannot drift.

``python -m botframework.config.reference > config/reference.yaml`` renders the core's options and
those of the channels and model providers shipped with botframework; ``--installed`` adds every
installed plugin (a test compares the shipped rendering with the committed file).

Channels and providers are plugins, so their sections are rendered from each plugin's own
``config_model``: a channel under ``tenants.acme.channels.<name>``, and for each provider the options
it adds to the common model options.
"""

from __future__ import annotations

import json
import sys
import textwrap
import types
import typing
from collections.abc import Callable
from typing import Any

import yaml
from pydantic import BaseModel, SecretStr, create_model
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from botframework.config.schema import Config, ModelConfig, TenantConfig
from botframework.errors import PluginError
from botframework.plugins import CHANNELS, PROVIDERS, PluginGroup
from botframework.tools.mcp.config import McpServerConfig

__all__ = ["render_reference"]

SHIPPED = "botframework"
"""The distribution whose plugins the committed reference documents."""

HEADER = """\
# botframework configuration reference (generated from the config models; do not edit by hand:
# python -m botframework.config.reference > config/reference.yaml).
#
# Every key with its default. `${VAR}` and `${VAR:-default}` read the environment anywhere in the file.
# Secrets (marked "secret") are never printed in logs. A channel key that is present turns the channel on
# (`websocket: {}` is valid); absent is off. Unknown keys are errors, reported with their path and line.
# Channels and model providers are plugins: installed packages may add more (see the README).
"""

REQUIRED_EXAMPLES = {"tenants.acme.agent.model": "main", "models.main.model": "your-model-id"}
"""Example values of required fields, by path (else the field's ``examples``, else ``...``)."""


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _model_of(arg)
            if found is not None:
                return found
    return None


def _is_secret(annotation: Any) -> bool:
    if annotation is SecretStr:
        return True
    return any(_is_secret(a) for a in typing.get_args(annotation))


def _reads_back(value: str) -> bool:
    """Plain ``value`` is read back by YAML as the same string (not a date, number or bool)."""
    if value == "...":  # the placeholder of a required value
        return True
    try:
        return bool(yaml.safe_load(value) == value)
    except yaml.YAMLError:
        return False


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return (
            json.dumps(value, ensure_ascii=False)
            if (
                not value
                or any(c in value for c in ":#{}[],&*!|>'\"%@`")
                or value != value.strip()
                or not _reads_back(value)
            )
            else value
        )
    if isinstance(value, tuple):
        value = list(value)
    return json.dumps(value, ensure_ascii=False)


def _secret_example(path: str) -> str:
    """``${TELEGRAM_BOT_TOKEN}`` for ``...channels.telegram.bot_token``: named after its section."""
    parts = path.split(".")[-2:]
    return "${" + "_".join(p.upper().replace("-", "_") for p in parts) + "}"


def _default(field: FieldInfo) -> Any:
    if field.default is not PydanticUndefined:
        return field.default
    if field.default_factory is not None:
        return field.default_factory()  # type: ignore[call-arg]
    return PydanticUndefined


def _comment(text: str, pad: str, out: list[str]) -> None:
    for line in textwrap.wrap(text.replace("``", "`"), 100 - len(pad)):
        out.append(f"{pad}# {line}")


Special = Callable[[int, list[str]], None]


def _render(model: type[BaseModel], indent: int, out: list[str], path: str, special: dict[str, Special]) -> None:
    pad = "  " * indent
    for name, field in model.model_fields.items():
        here = f"{path}.{name}" if path else name
        secret = _is_secret(field.annotation)
        if field.description:
            _comment(field.description + (" (secret)" if secret else ""), pad, out)
        if here in special:
            out.append(f"{pad}{name}:")
            special[here](indent + 1, out)
            continue
        sub = _model_of(field.annotation)
        if sub is not None:
            out.append(f"{pad}{name}:")
            _render(sub, indent + 1, out, here, special)
            continue
        default = _default(field)
        if secret and (default is None or default is PydanticUndefined):
            optional = default is None
            example = _secret_example(here)
            out.append(f"{pad}{'# ' if optional else ''}{name}: {example}{'' if optional else '   # required'}")
        elif default is PydanticUndefined:
            example = field.examples[0] if field.examples else REQUIRED_EXAMPLES.get(here, "...")
            out.append(f"{pad}{name}: {_scalar(example)}   # required")
        elif isinstance(default, SecretStr):
            out.append(f"{pad}{name}: {_secret_example(here)}")
        else:
            out.append(f"{pad}{name}: {_scalar(default)}")
        if indent == 0:
            out.append("")


def _plugins(group: PluginGroup[Any], installed: bool) -> list[tuple[str, Any | PluginError]]:
    found: list[tuple[str, Any | PluginError]] = []
    for name in group.names():
        sources = group.sources(name)
        if not installed and not any(s.distribution.split(" ")[0] == SHIPPED for s in sources):
            continue
        try:
            found.append((name, group.load(name)))
        except PluginError as exc:
            found.append((name, exc))
    return found


def _own_field(model: type[BaseModel], name: str) -> bool:
    """A field the provider's options add, or declare differently from the common options."""
    common = ModelConfig.model_fields.get(name)
    if common is None:
        return True
    mine = model.model_fields[name]
    return (mine.annotation, _default(mine), mine.description) != (
        common.annotation,
        _default(common),
        common.description,
    )


def render_reference(*, installed: bool = False) -> str:
    """The reference of the shipped plugins' options, or of every installed plugin's (``installed``)."""
    channels = _plugins(CHANNELS, installed)
    providers = _plugins(PROVIDERS, installed)

    def models(indent: int, out: list[str]) -> None:
        pad = "  " * indent
        out.append(f"{pad}main:")
        start = len(out)
        _render(ModelConfig, indent + 1, out, "models.main", {})
        if providers:
            out[start:] = [line.replace("provider: ...", f"provider: {providers[0][0]}") for line in out[start:]]
        for name, provider in providers:
            if isinstance(provider, PluginError):
                _comment(f"provider {name!r} is unavailable: {provider}", pad, out)
                continue
            extra = provider.config_model
            added = [f for f in extra.model_fields if _own_field(extra, f)]
            if not added:
                continue
            _comment(f"`provider: {name}` also takes, or sets differently:", pad, out)
            out.append(f"{pad}{name}_example:")
            out.append(f"{pad}  provider: {name}")
            if "model" not in added and extra.model_fields["model"].is_required():
                out.append(f"{pad}  model: {REQUIRED_EXAMPLES['models.main.model']}   # required")
            only_added = create_model(
                f"{name}_options", **{f: (extra.model_fields[f].annotation, extra.model_fields[f]) for f in added}
            )  # type: ignore[call-overload]
            _render(only_added, indent + 1, out, f"models.{name}_example", {})

    def tenant_channels(indent: int, out: list[str]) -> None:
        pad = "  " * indent
        for name, adapter in channels:
            if isinstance(adapter, PluginError):
                _comment(f"channel {name!r} is unavailable: {adapter}", pad, out)
                continue
            if adapter.config_model.__doc__:
                _comment(" ".join(adapter.config_model.__doc__.split()), pad, out)
            out.append(f"{pad}{name}:")
            before = len(out)
            _render(adapter.config_model, indent + 1, out, f"tenants.acme.channels.{name}", {})
            if len(out) == before:
                out[-1] += " {}"

    def tenants(indent: int, out: list[str]) -> None:
        out.append(f"{'  ' * indent}acme:")
        _render(TenantConfig, indent + 1, out, "tenants.acme", {"tenants.acme.channels": tenant_channels})

    def mcp_servers(indent: int, out: list[str]) -> None:
        out.append(f"{'  ' * indent}time:")
        _render(McpServerConfig, indent + 1, out, "mcp_servers.time", {})

    out: list[str] = [HEADER]
    _render(Config, 0, out, "", {"models": models, "tenants": tenants, "mcp_servers": mcp_servers})
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    print(render_reference(installed="--installed" in sys.argv[1:]), end="")
