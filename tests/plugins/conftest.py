"""Install throw-away distributions for plugin tests: a real ``*.dist-info`` on ``sys.path``.

``importlib.metadata`` finds them exactly as it finds a pip-installed package, so these tests go
through the same entry-point discovery a third-party plugin does.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from botframework.plugins import CHANNELS, HOOKS, PROVIDERS, TOOLS

Install = Callable[..., Path]


@pytest.fixture
def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Install]:
    """``install(dist, {group: {name: "module:attr"}}, modules={"module": "source"})``."""
    added: list[str] = []

    def _install(
        dist: str,
        entry_points: dict[str, dict[str, str]],
        *,
        modules: dict[str, str] | None = None,
        version: str = "1.0",
    ) -> Path:
        root = tmp_path / f"site-{dist}"
        info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        lines = []
        for group, names in entry_points.items():
            lines.append(f"[{group}]")
            lines += [f"{name} = {value}" for name, value in names.items()]
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
        for module, source in (modules or {}).items():
            (root / f"{module}.py").write_text(source)
        monkeypatch.syspath_prepend(str(root))
        added.extend((modules or {}).keys())
        for group in (CHANNELS, PROVIDERS, TOOLS, HOOKS):
            group.refresh()
        return root

    yield _install
    for module in added:
        sys.modules.pop(module, None)
    monkeypatch.undo()
    for group in (CHANNELS, PROVIDERS, TOOLS, HOOKS):
        group.refresh()
