"""The chat page: a question in, a streamed answer with numbered sources out."""

from __future__ import annotations

import html
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from chatbot.safety import DISCLAIMER

if TYPE_CHECKING:
    import gradio as gr

    from chatbot.chain import Answer, Chain

History = list[dict[str, Any]]


def sources_markdown(answer: Answer | None) -> str:
    """The sources panel for one answer."""
    if answer is None:
        return ""
    if answer.emergency:
        return "_Emergency guidance is given without searching the sources._"
    if answer.abstained:
        return f"_No source was relevant enough to answer from. Searched for: {html.escape(answer.query)}_"
    rows = []
    for n, p in enumerate(answer.passages, start=1):
        cited = "cited" if n in answer.cited else "not cited"
        where = f" - {html.escape(p.section)}" if p.section else ""
        rows.append(
            f"**[{n}] {html.escape(p.title)}{where}**  \n"
            f"`{html.escape(p.source_name)}` · score {p.score:.2f} · {cited}\n\n"
            f"> {html.escape(p.text[:600]).replace(chr(10), ' ')}"
        )
    if answer.uncited:
        rows.append("_The answer cites none of these sources: check it against them._")
    return "\n\n".join(rows)


def render_reply(answer: Answer) -> str:
    """The finished answer as shown in the chat, emergencies and abstentions marked."""
    if answer.emergency:
        return f"🚨 **EMERGENCY**\n\n{answer.text}"
    if answer.abstained:
        return f"ℹ️ **Not enough evidence**\n\n{answer.text}\n\n_{DISCLAIMER}_"
    note = ""
    if answer.unsupported:
        note = f"\n\n⚠️ {len(answer.unsupported)} sentence(s) above are not supported by the sources."
    return f"{answer.text}{note}\n\n_{DISCLAIMER}_"


def build_app(chain: Chain) -> gr.Blocks:
    """Build (not launch) the app around a chain; all users share the chain's models."""
    import gradio as gr

    from chatbot.errors import MedchatError

    def respond(question: str, history: History) -> Iterator[tuple[str, History, str]]:
        question = (question or "").strip()
        if not question:
            raise gr.Error("Type a medical question first.")
        earlier = [
            m["content"] for m in history if m.get("role") == "user" and isinstance(m.get("content"), str)
        ]
        history = [*history, {"role": "user", "content": question}, {"role": "assistant", "content": ""}]
        try:
            stream = chain.stream(question, history=earlier)
            text = ""
            for piece in stream:
                text += piece
                history[-1] = {"role": "assistant", "content": text}
                yield "", history, ""
        except MedchatError as e:
            raise gr.Error(str(e)) from e
        answer = stream.answer
        assert answer is not None
        history[-1] = {"role": "assistant", "content": render_reply(answer)}
        yield "", history, sources_markdown(answer)

    with gr.Blocks(title=chain.settings.ui.title) as app:
        title = html.escape(chain.settings.ui.title)
        gr.Markdown(f"# {title}\nAnswers from the indexed medical notes, with numbered sources.")
        with gr.Row():
            with gr.Column(scale=3):
                chat = gr.Chatbot(label="Conversation", height=480, elem_id="chat")
                question = gr.Textbox(
                    label="Your question",
                    placeholder="e.g. What blood pressure counts as high?",
                    elem_id="question",
                    lines=1,
                )
                with gr.Row():
                    send = gr.Button("Ask", variant="primary", elem_id="ask")
                    stop = gr.Button("Stop", elem_id="stop")
                    clear = gr.Button("New conversation", elem_id="clear")
            with gr.Column(scale=2):
                gr.Markdown("### Sources")
                sources = gr.Markdown(elem_id="sources")
        gr.Markdown(f"_{DISCLAIMER}_")

        ask_args: dict[str, Any] = {
            "fn": respond,
            "inputs": [question, chat],
            "outputs": [question, chat, sources],
        }
        events = [
            send.click(**ask_args, api_name="ask"),
            question.submit(**ask_args, api_visibility="private"),
        ]
        stop.click(None, cancels=events)  # type: ignore[arg-type]
        clear.click(lambda: ([], ""), None, [chat, sources], cancels=events)  # type: ignore[arg-type]
    return app
