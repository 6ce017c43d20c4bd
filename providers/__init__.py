"""The model providers shipped with botframework, each a plugin of the entry point group
``botframework.providers`` exactly as a third party's would be (see ``pyproject.toml``).

Every provider package has the same shape:

- ``config``: its options model, a subclass of :class:`botframework.config.ModelConfig`
  (``models.<name>`` is validated with it, so its own fields and required values are checked at load);
- ``wire``: the request body built from the budget engine's normalized messages;
- ``errors``: the one table mapping its SDK's exceptions to :class:`botframework.errors.ModelError` kinds;
- ``client``: the :class:`botframework.models.ModelClient` the entry point names.

The core imports none of them: a config names a provider, and the plugin registry loads it.
"""
