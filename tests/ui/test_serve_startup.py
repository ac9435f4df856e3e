"""`medchat serve` waits for its own page on a busy machine instead of dying (the two-annotator walk:
"When localhost is not accessible, a shareable link must be created" at load average 12)."""

import gradio.networking as networking

from chatbot.ui import serve


def test_the_startup_check_keeps_asking_until_the_page_answers(monkeypatch):
    calls = []

    def slow_page(url: str) -> bool:  # gradio's own check: one 3 s try, then False
        calls.append(url)
        return len(calls) >= 3

    monkeypatch.setattr(networking, "url_ok", slow_page)
    monkeypatch.setattr(serve.time, "sleep", lambda s: None)
    serve.patient_startup_check()
    assert networking.url_ok("http://127.0.0.1:7860/") is True
    assert len(calls) == 3
    serve.patient_startup_check()  # a second launch does not wrap it again
    assert getattr(networking.url_ok, "medchat_patient", False)


def test_a_page_that_never_answers_still_fails_after_the_limit(monkeypatch):
    monkeypatch.setattr(networking, "url_ok", lambda url: False)
    monkeypatch.setattr(serve, "STARTUP_CHECK_S", 0.0)
    monkeypatch.setattr(serve.time, "sleep", lambda s: None)
    serve.patient_startup_check()
    assert networking.url_ok("http://127.0.0.1:7860/") is False
