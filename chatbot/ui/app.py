"""The chat page: a question in, a streamed answer with numbered sources out."""

from __future__ import annotations

import html
from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from chatbot.safety import DISCLAIMER

if TYPE_CHECKING:
    import gradio as gr

    from chatbot.chain import Answer, Chain
    from chatbot.store.prefs import PreferenceStore
    from chatbot.ui.auth import Users
    from chatbot.variants import Variant

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


def build_app(
    chain: Chain,
    *,
    store: PreferenceStore | None = None,
    variants: list[Variant] | None = None,
    users: Users | None = None,
) -> gr.Blocks:
    """Build (not launch) the app: Chat, Compare and Results tabs.

    All users share the chain's models and the store; per-user state lives in `gr.State`
    and the database. Logins are checked at launch (`auth=users.check`), not here.
    """
    import gradio as gr

    from chatbot.engines.base import GenerationParams
    from chatbot.errors import MedchatError
    from chatbot.store.prefs import open_store
    from chatbot.ui.auth import Users
    from chatbot.ui.compare import CompareService, build_compare_tab
    from chatbot.ui.results import build_results_tab
    from chatbot.variants import VariantRunner, load_variants

    settings = chain.settings
    store = store or open_store(settings)
    variants = variants if variants is not None else load_variants(settings.prefs.variants_file)
    users = users if users is not None else Users.load(settings.users_path)
    runner = VariantRunner(chain, variants)
    service = CompareService(store, runner, settings)
    default_variant = "settings default"

    def chain_for(variant: str, k: int) -> Chain:
        from chatbot.chain import Chain

        base = chain if variant == default_variant else runner.chain_for(variant)
        if k == base.settings.retrieval.k:
            return base
        tuned = base.settings.model_copy(deep=True)
        tuned.retrieval.k = k
        return Chain(tuned, retriever=base.retriever, engine=base.engine, variant=base.variant)

    def respond(
        question: str,
        history: History,
        variant: str = default_variant,
        k: int | None = None,
        temperature: float | None = None,
    ) -> Iterator[tuple[str, History, str]]:
        question = (question or "").strip()
        if not question:
            raise gr.Error("Type a medical question first.")
        earlier = [
            m["content"] for m in history if m.get("role") == "user" and isinstance(m.get("content"), str)
        ]
        history = [*history, {"role": "user", "content": question}, {"role": "assistant", "content": ""}]
        variant = variant if variant in runner.variants else default_variant
        k = max(1, min(int(k or settings.retrieval.k), settings.ui.max_k))
        active = chain_for(variant, k)
        params = (
            runner.params_for(variant)
            if variant != default_variant
            else GenerationParams.from_settings(settings.generation)
        )
        if temperature is not None:
            params = replace(
                params, temperature=max(0.0, min(float(temperature), settings.ui.max_temperature))
            )
        try:
            stream = active.stream(question, history=earlier, params=params)
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

    with gr.Blocks(title=settings.ui.title) as app:
        title = html.escape(settings.ui.title)
        gr.Markdown(f"# {title}\nAnswers from the indexed medical notes, with numbered sources.")
        with gr.Tab("Chat", elem_id="tab-chat"), gr.Row():
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
                with gr.Accordion("Answer settings", open=False):
                    variant = gr.Dropdown(
                        [default_variant, *runner.variants], value=default_variant, label="Variant"
                    )
                    k_slider = gr.Slider(
                        1, settings.ui.max_k, value=settings.retrieval.k, step=1, label="Passages (k)"
                    )
                    temp = gr.Slider(
                        0.0,
                        settings.ui.max_temperature,
                        value=settings.generation.temperature,
                        step=0.1,
                        label="Temperature",
                    )
            with gr.Column(scale=2):
                gr.Markdown("### Sources")
                sources = gr.Markdown(elem_id="sources")
        with gr.Tab("Compare", elem_id="tab-compare"):
            build_compare_tab(app, service, users)
        with gr.Tab("Results", elem_id="tab-results") as results_tab:
            build_results_tab(app, results_tab, store, users, rounds=settings.prefs.bootstrap_rounds)
        gr.Markdown(f"_{DISCLAIMER}_")

        ask_args: dict[str, Any] = {
            "fn": respond,
            "inputs": [question, chat, variant, k_slider, temp],
            "outputs": [question, chat, sources],
        }
        events = [
            send.click(**ask_args, api_name="ask"),
            question.submit(**ask_args, api_visibility="private"),
        ]
        stop.click(None, cancels=events)  # type: ignore[arg-type]
        clear.click(lambda: ([], ""), None, [chat, sources], cancels=events, api_visibility="private")  # type: ignore[arg-type]
    return app
