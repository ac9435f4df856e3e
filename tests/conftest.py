"""Shared fixtures: a temp MEDCHAT_HOME per test, the real embedder once per session.

Every test that uses the real embedder (the `embedder` fixture, directly or through `few_index`)
is marked `slow`, as are the system tests (tests/system/conftest.py) and the few that reach real
models or servers another way: `pytest -m "not slow"` is the inner loop, plain `pytest` runs all.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "data" / "corpus"
SHARED_DATASETS = REPO.parent / "shared" / "datasets"

# a few sample notes that cover distinct topics, for small real indexes
FEW_NOTES = ("hypertension.md", "type-2-diabetes.md", "asthma.md", "warfarin.md", "migraine.md")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "embedder" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def shared_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Derived model files (the Q8_0 copy of the bundled model) are made once per session."""
    return tmp_path_factory.mktemp("models")


@pytest.fixture(autouse=True)
def medchat_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared_models_dir: Path) -> Path:
    """Every test writes under its own MEDCHAT_HOME and reads no user config."""
    home = tmp_path / "home"
    monkeypatch.setenv("MEDCHAT_HOME", str(home))
    monkeypatch.delenv("MEDCHAT_CONFIG", raising=False)
    for key in list(__import__("os").environ):
        if key.startswith("MEDCHAT_") and key not in ("MEDCHAT_HOME",):
            monkeypatch.delenv(key)
    monkeypatch.setenv("MEDCHAT_GENERATION__MODELS_DIR", str(shared_models_dir))
    # most tests exercise what the chain does with a model's answer, so they ask for the model's
    # answer (checked and marked in place); the tests of the default (extractive) answer remove this
    monkeypatch.setenv("MEDCHAT_GENERATION__GROUNDING", "free")
    from chatbot.settings import get_settings

    get_settings.cache_clear()
    return home


@pytest.fixture
def settings(medchat_home: Path):
    from chatbot.settings import Settings

    return Settings()


@pytest.fixture(scope="session")
def embedder():
    """The real all-MiniLM-L6-v2 from its offline package, loaded once."""
    from ingestion.embedding import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder()


@pytest.fixture
def few_notes(tmp_path: Path) -> Path:
    """A folder with a copy of a few sample notes (tests may edit them)."""
    folder = tmp_path / "notes"
    folder.mkdir()
    for name in FEW_NOTES:
        shutil.copy(CORPUS / name, folder / name)
    return folder


@pytest.fixture
def few_index(settings, few_notes: Path, embedder):
    """A real Chroma index of the few notes under this test's MEDCHAT_HOME."""
    from ingestion.pipeline import ingest

    report = ingest([few_notes], settings=settings, embedder=embedder)
    assert report.count("ingested") == len(FEW_NOTES)
    return report
