"""A model provider from a third party's distribution: declared by entry point, validated by its own
options model, and answering a turn, exactly as the shipped providers do."""

from __future__ import annotations

import pytest

from botframework.config import parse_config
from botframework.config.reference import render_reference
from botframework.errors import ConfigError
from botframework.runtime import Runtime
from botframework.turn import Origin
from tests.plugins.conftest import Install

PARROT = '''
from pydantic import Field, SecretStr

from botframework.config import ModelConfig
from botframework.models import ModelClient, ModelRequest, ModelResponse, Usage

SEEN = []


class ParrotOptions(ModelConfig):
    """provider: parrot"""

    prefix: str = Field(min_length=1)
    """What every answer starts with."""
    token: SecretStr
    """Credential of the parrot service."""


class ParrotClient(ModelClient):
    config_model = ParrotOptions

    async def complete(self, request: ModelRequest, *, on_text=None) -> ModelResponse:
        assert isinstance(self.config, ParrotOptions)
        SEEN.append((self.config.token.get_secret_value(), request))
        text = f"{self.config.prefix} {request.messages[-1].text}"
        if on_text is not None:
            await on_text(text)
        return ModelResponse(text=text, usage=Usage(input_tokens=7, output_tokens=3), model=self.config.model)
'''

CONFIG = """\
storage: {{url: "{db}"}}
models:
  main:
    provider: parrot
    model: polly-1
    prefix: Squawk!
    token: ${{PARROT_TOKEN}}
    context_window: 4096
    max_output_tokens: 256
tenants:
  acme:
    agent: {{model: main}}
"""


def _install(install: Install) -> None:
    install(
        "bf-parrot", {"botframework.providers": {"parrot": "bf_parrot:ParrotClient"}}, modules={"bf_parrot": PARROT}
    )


async def test_a_provider_from_another_distribution_answers_a_turn(install: Install, db_url: str) -> None:
    _install(install)
    config = parse_config(CONFIG.format(db=db_url), env={"PARROT_TOKEN": "tok-1"})
    options = config.models["main"]
    assert type(options).__name__ == "ParrotOptions"
    runtime = Runtime(config=config, channels=False)
    await runtime.start()
    try:
        reply = await runtime.ask(
            tenant="acme", origin=Origin.background("test"), conversation_key="k", text="hello there"
        )
    finally:
        await runtime.stop()
    assert reply.text == "Squawk! hello there" and not reply.is_error
    assert reply.model == "main"
    import bf_parrot  # type: ignore[import-not-found]

    [(token, request)] = bf_parrot.SEEN
    assert token == "tok-1"
    assert request.messages[-1].text == "hello there" and request.max_tokens <= 256


def test_its_options_are_checked_with_paths(install: Install) -> None:
    _install(install)
    text = CONFIG.format(db="sqlite+aiosqlite:///:memory:").replace("    prefix: Squawk!\n", "    prefx: Squawk!\n")
    with pytest.raises(ConfigError) as info:
        parse_config(text, env={"PARROT_TOKEN": "t"})
    assert [str(p) for p in info.value.problems] == [
        "models.main.prefix: field required (line 3)",
        "models.main.prefx: unknown field (check the spelling against config/reference.yaml) (line 6)",
    ]


def test_its_options_appear_in_the_installed_reference(install: Install) -> None:
    _install(install)
    installed = render_reference(installed=True)
    assert "  parrot_example:\n    provider: parrot\n    model: your-model-id   # required\n" in installed
    assert "    # What every answer starts with.\n    prefix: ...   # required\n" in installed
    assert "    token: ${PARROT_EXAMPLE_TOKEN}   # required\n" in installed
    assert "parrot" not in render_reference()


def test_the_reference_reads_back_as_the_strings_it_shows() -> None:
    """A version like 2024-10-21 must be quoted, or YAML reads a date that the option then refuses."""
    import yaml

    models = yaml.safe_load(render_reference())["models"]
    assert models["azure_example"]["api_version"] == "2024-10-21"
    assert models["gemini_example"]["api_version"] == "v1beta"


def test_building_the_base_model_options_directly_is_refused_and_model_validate_picks_the_plugin() -> None:
    from botframework.config.schema import ModelConfig

    with pytest.raises(TypeError, match="model_validate"):
        ModelConfig(provider="openai", model="gpt-4o-mini", api_key="sk-test")
    options = ModelConfig.model_validate({"provider": "openai", "model": "gpt-4o-mini", "api_key": "sk-test"})
    assert options.model == "gpt-4o-mini" and type(options) is not ModelConfig
