"""Building blocks for config models, shared by the core and by plugins.

A channel or provider plugin writes its options as a :class:`StrictModel` with these field types, so
its YAML section behaves like every other: unknown keys are errors, secrets are masked, numeric ids
may be written as numbers, and every field carries a docstring that ``config/reference.yaml`` shows.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, SecretStr

__all__ = ["HttpUrl", "Name", "Secret", "StrId", "StrictModel"]


def _id_to_str(value: Any) -> Any:
    """Numeric ids (agent ids, app ids) may be written as YAML numbers or strings."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)
    return value


def _no_trailing_space(value: str) -> str:
    if value != value.strip():
        raise ValueError("must not start or end with whitespace")
    return value


StrId = Annotated[str, BeforeValidator(_id_to_str), AfterValidator(_no_trailing_space), Field(min_length=1)]
"""An identifier that YAML may type as a number (``agent_id: 1000002``)."""
Secret = Annotated[SecretStr, Field(min_length=1)]
"""A required, non-empty secret: masked in reprs and redacted from logs."""
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")]
"""A config key that is also used in routes, labels and logs."""
HttpUrl = Annotated[str, Field(pattern=r"^https?://\S+$")]
"""An http(s) URL; vendor base URLs are configurable so tests and proxies can point elsewhere."""


class StrictModel(BaseModel):
    """Base of every config model: unknown keys are errors, values are frozen, docstrings document."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)
