"""Load a YAML config: parse with line numbers, interpolate ``${VAR}``, validate, cross-check.

Every problem is reported with its dotted YAML path and line, all at once, never as a traceback::

    tenants.acme.channels.slack.signing_secret: field required (line 14)
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from botframework.config.schema import Config
from botframework.config.sections import BROKEN_PLUGIN, SKIP_BROKEN_PLUGINS
from botframework.errors import ConfigError, ConfigProblem

__all__ = ["interpolate", "load_config", "parse_config"]

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class _MissingVar(Exception):
    def __init__(self, name: str) -> None:
        self.name = name


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Replace ``${VAR}`` and ``${VAR:-default}``; ``$${`` escapes a literal ``${``."""

    def sub(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        got = env.get(name)
        if got is None or (got == "" and default is not None):
            if default is None:
                raise _MissingVar(name)
            return default
        return got

    parts = value.split("$${")
    return "${".join(_VAR.sub(sub, p) for p in parts)


def _to_python(
    node: yaml.Node, path: str, lines: dict[str, int], env: Mapping[str, str], problems: list[ConfigProblem]
) -> Any:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = (
                yaml.safe_load(yaml.serialize(key_node)) if key_node.tag != "tag:yaml.org,2002:str" else key_node.value
            )
            child = f"{path}.{key}" if path else str(key)
            if key in out:
                problems.append(ConfigProblem(child, "duplicate key", key_node.start_mark.line + 1))
            lines[child] = key_node.start_mark.line + 1
            out[key] = _to_python(value_node, child, lines, env, problems)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [
            _to_python(v, f"{path}.{i}" if path else str(i), lines, env, problems) for i, v in enumerate(node.value)
        ]
    assert isinstance(node, yaml.ScalarNode)
    if node.tag == "tag:yaml.org,2002:str" and "${" in node.value:
        try:
            text = interpolate(node.value, env)
        except _MissingVar as exc:
            problems.append(
                ConfigProblem(
                    path or "<root>",
                    f"environment variable {exc.name} is not set (set it, or write ${{{exc.name}:-default}})",
                    node.start_mark.line + 1,
                )
            )
            return None
        if node.style is None:  # plain scalar: let YAML type the result (ports, booleans)
            return yaml.safe_load(text) if text.strip() else text
        return text
    return yaml.safe_load(yaml.serialize(node))


def _loc_to_path(loc: tuple[int | str, ...]) -> str:
    # pydantic adds the union member / validator name to loc for some errors; drop those.
    parts = [str(p) for p in loc if not (isinstance(p, str) and (p.startswith("function-") or "[" in p))]
    return ".".join(parts) or "<root>"


def _message(err: Mapping[str, Any]) -> str:
    kind = err.get("type")
    if kind == "missing":
        return "field required"
    if kind == "extra_forbidden":
        return "unknown field (check the spelling against config/reference.yaml)"
    msg = str(err.get("msg", "invalid"))
    return msg.removeprefix("Value error, ")


def parse_config(
    text: str, *, env: Mapping[str, str] | None = None, source: str = "<config>", skip_broken_plugins: bool = False
) -> Config:
    """Parse and validate config text. Raises ConfigError with every problem found.

    ``skip_broken_plugins`` (``serve``): a channel whose installed plugin cannot be loaded is not an
    error of the whole file; its section holds an ``UnavailablePlugin`` and the rest runs."""
    env = os.environ if env is None else env
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise ConfigError([ConfigProblem("<yaml>", f"{exc.problem or exc} in {source}", line)]) from exc
    except yaml.YAMLError as exc:
        raise ConfigError([ConfigProblem("<yaml>", f"{exc} in {source}")]) from exc
    if root is None:
        raise ConfigError([ConfigProblem("<root>", f"{source} is empty")])
    problems: list[ConfigProblem] = []
    lines: dict[str, int] = {}
    data = _to_python(root, "", lines, env, problems)
    if not isinstance(data, dict):
        raise ConfigError([ConfigProblem("<root>", "the config must be a mapping", 1)])
    reported = {p.path for p in problems}

    def line_of(path: str) -> int | None:
        while path:
            if path in lines:
                return lines[path]
            path = path.rpartition(".")[0]
        return None

    from botframework.config.checks import config_problems, raw_problems

    config: Config | None = None
    try:
        config = Config.model_validate(data, context={SKIP_BROKEN_PLUGINS: skip_broken_plugins})
    except ValidationError as exc:
        for err in exc.errors():
            path = _loc_to_path(err["loc"])
            if any(path == r or path.startswith(r + ".") or r.startswith(path + ".") for r in reported):
                continue
            for msg in _message(err).split("\n"):
                problems.append(ConfigProblem(path, msg, line_of(path)))
    reported |= {p.path for p in problems}
    for path, msg in raw_problems(data):
        if path not in reported:
            problems.append(ConfigProblem(path, msg, line_of(path)))
    if config is not None and not problems:
        for path, msg in config_problems(config):
            if not (skip_broken_plugins and msg.startswith(BROKEN_PLUGIN)):
                problems.append(ConfigProblem(path, msg, line_of(path)))
    if problems or config is None:
        raise ConfigError(sorted(problems, key=lambda p: (p.line or 0, p.path)))
    return config


def load_config(
    path: str | os.PathLike[str], *, env: Mapping[str, str] | None = None, skip_broken_plugins: bool = False
) -> Config:
    """Read and validate a config file (``skip_broken_plugins``: see :func:`parse_config`)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([ConfigProblem("<file>", f"{p} does not exist")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([ConfigProblem("<file>", f"cannot read {p}: {exc}")]) from exc
    return parse_config(text, env=env, source=str(p), skip_broken_plugins=skip_broken_plugins)
