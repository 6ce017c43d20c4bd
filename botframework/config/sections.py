"""Config sections whose shape a plugin decides: ``tenants.*.channels.<name>`` and ``models.*``.

The core cannot list every channel's or provider's options in its own schema, so those sections are
validated by the plugin's own ``config_model``, found by name in the plugin registry. Errors come
out as ordinary pydantic errors located inside the section, so the loader reports them with their
full YAML path and line like any other (``tenants.acme.channels.slack.signing_secret: field
required (line 14)``).

Only plugins a config actually uses are imported. A plugin that is installed but broken (it does not
import, or two distributions claim its name) is a problem of that section alone: by default it is an
error, but ``serve`` validates with :data:`SKIP_BROKEN_PLUGINS` so the other tenants and channels
still start; the section then holds an :class:`UnavailablePlugin` that says why.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError, ValidationInfo, ValidatorFunctionWrapHandler
from pydantic_core import InitErrorDetails, PydanticCustomError

from botframework.errors import PluginError
from botframework.plugins import CHANNELS, PROVIDERS

__all__ = ["BROKEN_PLUGIN", "SKIP_BROKEN_PLUGINS", "UnavailablePlugin", "validate_channels", "validate_model"]

SKIP_BROKEN_PLUGINS = "skip_broken_plugins"
"""Validation context flag: an installed plugin that fails to load disables its section only."""


BROKEN_PLUGIN = "plugin unavailable: "
"""How the problem of an :class:`UnavailablePlugin` section starts (``check-config`` reports it)."""


class UnavailablePlugin(BaseModel):
    """Stands in for the options of a section whose plugin could not be loaded (``serve`` only)."""

    model_config = {"frozen": True}

    name: str
    problem: str
    distribution: str | None = None


def _skip_broken(info: ValidationInfo) -> bool:
    context = info.context
    return isinstance(context, Mapping) and bool(context.get(SKIP_BROKEN_PLUGINS))


def _relocated(exc: ValidationError, prefix: tuple[str | int, ...]) -> list[InitErrorDetails]:
    out: list[InitErrorDetails] = []
    for err in exc.errors():
        detail = InitErrorDetails(type=err["type"], loc=(*prefix, *err["loc"]), input=err["input"])
        if "ctx" in err:
            detail["ctx"] = err["ctx"]
        out.append(detail)
    return out


def _plugin_error(exc: PluginError) -> PydanticCustomError:
    return PydanticCustomError("plugin", "{message}", {"message": str(exc)})


def validate_channels(value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo) -> dict[str, BaseModel]:
    """``tenants.*.channels``: each present key is a channel plugin, its value that channel's options."""
    if not isinstance(value, Mapping):
        return handler(value)  # type: ignore[no-any-return]
    out: dict[str, BaseModel] = {}
    errors: list[InitErrorDetails] = []
    for key, options in value.items():
        if isinstance(options, BaseModel):
            out[key] = options
            continue
        try:
            adapter = CHANNELS.load(key)
        except PluginError as exc:
            if key in CHANNELS and _skip_broken(info):
                out[key] = UnavailablePlugin(name=key, problem=str(exc), distribution=exc.distribution)
            else:
                errors.append(InitErrorDetails(type=_plugin_error(exc), loc=(key,), input=options))
            continue
        try:
            out[key] = adapter.config_model.model_validate({} if options is None else options, context=info.context)
        except ValidationError as exc:
            errors.extend(_relocated(exc, (key,)))
    if errors:
        raise ValidationError.from_exception_data("channels", errors)
    return out


def validate_model(
    cls: type[BaseModel], value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
) -> Any:
    """``models.<name>``: validated by the ``config_model`` of the provider it names (``cls`` is the
    model being validated; when the provider's model is that model itself, ``handler`` validates)."""
    if not isinstance(value, Mapping) or not isinstance(value.get("provider"), str):
        return handler(value)  # the base model reports a missing or mistyped provider
    try:
        provider = PROVIDERS.load(value["provider"])
    except PluginError as exc:
        raise ValidationError.from_exception_data(
            "model", [InitErrorDetails(type=_plugin_error(exc), loc=("provider",), input=value["provider"])]
        ) from None
    model = provider.config_model
    if model is cls or not issubclass(model, cls):
        return handler(value)
    try:
        return model.model_validate(value, context=info.context)
    except ValidationError as exc:
        raise ValidationError.from_exception_data("model", _relocated(exc, ())) from None
