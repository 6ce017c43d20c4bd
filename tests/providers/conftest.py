from tests.fakes.anthropic_server import fake_anthropic
from tests.fakes.openai_server import fake_openai

__all__ = ["fake_anthropic", "fake_openai"]
