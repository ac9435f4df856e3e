"""System tests (end to end, browser, concurrency, packaging, real-model latency) are all slow:
`pytest -m "not slow"` leaves them out of the inner loop; plain `pytest` runs them."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.slow)
