"""The Gradio app builds, and a real server on 127.0.0.1 answers through gradio_client."""

import socket

import pytest

from chatbot.chain import Chain
from chatbot.engines.fake import FakeEngine
from chatbot.retrieval import open_retriever


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def chain(few_index, settings, embedder):
    return Chain(settings, retriever=open_retriever(settings, embedder), engine=FakeEngine())


def test_the_app_builds_with_the_chat_parts(chain):
    import gradio as gr

    from chatbot.ui.app import build_app

    app = build_app(chain)
    assert isinstance(app, gr.Blocks)
    ids = {getattr(c, "elem_id", None) for c in app.blocks.values()}
    assert {"chat", "question", "ask", "stop", "sources"} <= ids


def test_a_real_server_streams_an_answer_with_sources(chain):
    from gradio_client import Client

    from chatbot.ui.app import build_app

    port = _free_port()
    app = build_app(chain)
    app.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        textbox, history, sources, status = client.predict(
            "What is a normal INR on warfarin?", [], api_name="/ask"
        )
        assert textbox == ""
        reply = history[-1]["content"]
        reply = reply if isinstance(reply, str) else str(reply)
        assert '<a class="cite" href="#src-1"' in reply and "not medical advice" in reply
        assert "[1] " in sources and "warfarin.md" in sources
        assert status.startswith("Answered in")

        # an empty question only says so: the conversation and the box are as they were
        textbox, history, _sources, status = client.predict("   ", history, api_name="/ask")
        assert textbox == "   " and status == "Type a medical question first, then press Ask."
        assert len(history) == 2
    finally:
        app.close()
