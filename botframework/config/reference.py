"""Generate ``config/reference.yaml`` from the schema, so the documented reference cannot drift.

``python -m botframework.config.reference > config/reference.yaml``; a test compares the two.
"""

from __future__ import annotations

import json
import textwrap
import types
import typing
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic_core import PydanticUndefined

from botframework.config.schema import Config, ModelConfig, TenantConfig
from botframework.tools.mcp.config import McpServerConfig

__all__ = ["render_reference"]

HEADER = """\
# botframework configuration reference (generated from botframework/config/schema.py; do not edit by hand:
# python -m botframework.config.reference > config/reference.yaml).
#
# Every key with its default. `${VAR}` and `${VAR:-default}` read the environment anywhere in the file.
# Secrets (marked "secret") are never printed in logs. A channel key that is present turns the channel on
# (`websocket: {}` is valid); absent is off. Unknown keys are errors, reported with their path and line.
"""

EXAMPLES: dict[str, dict[str, Any]] = {
    "models": {"main": ModelConfig},
    "tenants": {"acme": TenantConfig},
    "mcp_servers": {"time": McpServerConfig},
}

SECRET_EXAMPLES = {
    "api_key": "${OPENAI_API_KEY}",
    "signing_secret": "${SLACK_SIGNING_SECRET}",
    "bot_token": "${BOT_TOKEN}",
    "app_token": "${SLACK_APP_TOKEN}",
    "app_secret": "${APP_SECRET}",
    "secret": "${WECOM_SECRET}",
    "token": "${CALLBACK_TOKEN}",
    "encoding_aes_key": "${ENCODING_AES_KEY}",
    "encrypt_key": "${FEISHU_ENCRYPT_KEY}",
    "verification_token": "${FEISHU_VERIFICATION_TOKEN}",
}
REQUIRED_EXAMPLES = {
    "model": "main",
    "app_id": "cli_xxx",
    "corp_id": "ww0123456789",
    "agent_id": 1000002,
    "provider": "openai",
}


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


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return (
            json.dumps(value)
            if (not value or any(c in value for c in ":#{}[],&*!|>'\"%@`") or value != value.strip())
            else value
        )
    if isinstance(value, tuple):
        value = list(value)
    return json.dumps(value)


def _render(model: type[BaseModel], indent: int, out: list[str]) -> None:
    pad = "  " * indent
    for name, field in model.model_fields.items():
        doc = (field.description or "").replace("``", "`")
        secret = _is_secret(field.annotation)
        if doc:
            for line in textwrap.wrap(doc + (" (secret)" if secret else ""), 100 - len(pad)):
                out.append(f"{pad}# {line}")
        sub = _model_of(field.annotation)
        if name in EXAMPLES and model is Config:
            out.append(f"{pad}{name}:")
            for key, example in EXAMPLES[name].items():
                out.append(f"{pad}  {key}:")
                _render(example, indent + 2, out)
            continue
        if sub is not None:
            out.append(f"{pad}{name}:")
            _render(sub, indent + 1, out)
            continue
        if field.default is not PydanticUndefined:
            default = field.default
        elif field.default_factory is not None:
            default = field.default_factory()  # type: ignore[call-arg]
        else:
            default = PydanticUndefined
        if secret and (default is None or default is PydanticUndefined):
            value = SECRET_EXAMPLES.get(name, "${SECRET}")
            optional = default is None
            out.append(f"{pad}{'# ' if optional else ''}{name}: {value}{'' if optional else '   # required'}")
        elif default is PydanticUndefined:
            out.append(f"{pad}{name}: {_scalar(REQUIRED_EXAMPLES.get(name, '...'))}   # required")
        elif isinstance(default, SecretStr):
            out.append(f"{pad}{name}: {SECRET_EXAMPLES.get(name, '${SECRET}')}")
        else:
            out.append(f"{pad}{name}: {_scalar(default)}")
        out.append("") if indent == 0 else None


def render_reference() -> str:
    out: list[str] = [HEADER]
    _render(Config, 0, out)
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    print(render_reference(), end="")
