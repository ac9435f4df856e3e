"""The chat page: a question in, a streamed answer with numbered sources out."""

from __future__ import annotations

import html
import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from chatbot.safety.wording import DISCLAIMER
from chatbot.ui.render import clip, html_text, markdown_text

if TYPE_CHECKING:
    import gradio as gr

    from chatbot.chain import Answer, Chain
    from chatbot.labelling.store.prefs import PreferenceStore
    from chatbot.labelling.variants import Variant
    from chatbot.retrieval import Passage
    from chatbot.ui.auth import Users

History = list[dict[str, Any]]

# the page's own look: answers and the vote on one 1440x900 screen, long answers scroll in place
CSS = """
.gradio-container { max-width: 1400px !important; padding-top: 0 !important; }
#page-title h1 { font-size: 1.5em; margin: 4px 0 0 0; }
#page-title p { margin: 0; }
#cmp-ask-row { align-items: end; }
#cmp-ask-row button { max-height: 44px; }
#cmp-top { align-items: center; gap: 8px; }
#cmp-top .prose, #cmp-top p { margin: 0 !important; font-size: 0.9em; }
.cmp-answer { max-height: 21vh; overflow-y: auto; padding: 4px 10px; min-height: 4em;
  border: 1px solid var(--border-color-primary); border-radius: 6px; }
.cmp-answer p { margin: 0 0 0.5em 0; }
.cmp-waiting { color: var(--body-text-color-subdued); font-style: italic; }
.cite { font-size: 0.85em; color: var(--color-accent); font-weight: 600; }
.src blockquote { margin: 2px 0 8px 0; font-size: 0.9em; }
#cmp-vote .wrap { gap: 4px 10px; }
#cmp-vote fieldset { padding: 4px 8px !important; }
#cmp-status p, #cmp-reveal p { margin: 2px 0 !important; }
#res-annotators { overflow-x: auto; }
.triage-mark { padding: 6px 10px; border-radius: 4px; border-left: 6px solid; margin-bottom: 4px; }
.triage-emergency { background: #fde0dc; border-color: #b71c1c; color: #7f0000; font-size: 1.15em; }
.triage-urgent { background: #fff0d9; border-color: #e65100; color: #6d2c00; }
.triage-routine { background: #e8f5e9; border-color: #2e7d32; color: #1b4d1f; font-size: 0.9em; }
"""

# keyboard shortcuts of the Compare tab (shown on the page): 1-4 pick the choice, Ctrl+Enter submits,
# Alt+N next, Alt+S skip. Digits are left alone while typing in a text field. Also: the chat's copy
# buttons copy the text as shown (Gradio's copy the escaped Markdown: "now&#46;").
SHORTCUTS_JS = """
() => {
  if (window.__medchatKeys) return;
  window.__medchatKeys = true;
  const visible = (el) => el && el.offsetParent !== null;
  const press = (sel) => { const b = document.querySelector(sel); if (visible(b) && !b.disabled) b.click(); };
  document.addEventListener('keydown', (e) => {
    const choice = document.querySelector('#cmp-choice');
    if (!visible(choice)) return;
    const typing = e.target && (e.target.tagName === 'TEXTAREA' ||
      (e.target.tagName === 'INPUT' && !['radio', 'checkbox'].includes(e.target.type)));
    if (e.ctrlKey && e.key === 'Enter') { e.preventDefault(); press('#cmp-submit'); return; }
    if (e.altKey && (e.key === 'n' || e.key === 'N')) { e.preventDefault(); press('#cmp-next'); return; }
    if (e.altKey && (e.key === 's' || e.key === 'S')) { e.preventDefault(); press('#cmp-skip'); return; }
    if (typing || e.ctrlKey || e.altKey || e.metaKey) return;
    const n = '1234'.indexOf(e.key);
    if (n < 0) return;
    const inputs = choice.querySelectorAll('input[type=radio]');
    if (inputs[n] && !inputs[n].disabled) { e.preventDefault(); inputs[n].click(); }
  });
  // the chat's copy buttons copy what the page shows, not the escaped Markdown behind it
  document.addEventListener('click', (e) => {
    const b = e.target.closest && e.target.closest('#chat button');
    const label = b ? (b.getAttribute('aria-label') || b.title || '') : '';
    if (!/^copy (message|conversation)/i.test(label) || !navigator.clipboard) return;
    const rows = /conversation/i.test(label)
      ? [...document.querySelectorAll('#chat .message-row')]
      : [b.closest('.message-buttons') && b.closest('.message-buttons').previousElementSibling];
    const text = rows.filter(Boolean).map((r) => r.innerText.trim()).join('\\n\\n');
    if (text) setTimeout(() => navigator.clipboard.writeText(text).catch(() => {}), 150);
  }, true);
}
"""


def text_of(content: Any) -> str:
    """The text of a chat message as Gradio sends it: a string, or (Gradio 6) a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        if content.get("type", "text") != "text":
            return ""  # a file or image part carries no question text
        return str(content.get("text") or content.get("content") or "")
    if isinstance(content, list | tuple):
        return " ".join(t for t in (text_of(part) for part in content) if t)
    return ""


def asked_text(content: Any) -> str:
    """A question back from the chat history, undoing `markdown_text`'s escaping."""
    return html.unescape(text_of(content)).replace("  \n", "\n").strip()


def match_of(passage: Passage) -> str:
    """How a passage was found: its similarity to the question, or the keyword index alone (whose
    passages have no similarity: "score 0.00" read as "irrelevant")."""
    if passage.dense_scored:
        return f"score {passage.score:.2f}"
    return "found by keywords"


def sources_html(answer: Answer | None) -> str:
    """The sources panel for one answer, best first, each passage as text."""
    if answer is None:
        return ""
    if answer.emergency:
        return "<p><i>Emergency guidance is given without searching the sources.</i></p>"
    if answer.abstained:
        return (
            "<p><i>No source was relevant enough to answer from. Searched for: "
            f"{html.escape(answer.query)}</i></p>"
        )
    rows = []
    # numbered as in the answer, listed by score (the prompt puts the best at both ends)
    ranked = sorted(enumerate(answer.passages, start=1), key=lambda np: -np[1].score)
    for n, p in ranked:
        cited = "cited" if n in answer.cited else "not cited"
        where = f" - {html.escape(p.section)}" if p.section else ""
        rows.append(
            f'<div class="src"><b>[{n}] {html.escape(p.title)}{where}</b><br>'
            f"<code>{html.escape(p.source_name)}</code> · {match_of(p)} · {cited}"
            f"<blockquote>{html_text(clip(p.text, 600), citations=False)}</blockquote></div>"
        )
    if answer.uncited:
        rows.append("<p><i>The answer cites none of these sources: check it against them.</i></p>")
    return "".join(rows)


# kept for callers of the Markdown-era name
sources_markdown = sources_html


def triage_banner(answer: Answer) -> str:
    """A line above a non-emergency answer, distinct per triage level (and for non-English messages)."""
    triage = answer.triage or {}
    marks = []
    if triage.get("language"):
        language = html.escape(str(triage["language"]))
        marks.append(f"🌐 **Not English ({language})**: the emergency check reads English only")
    if triage.get("level") == "urgent":
        marks.append(level_mark("urgent", "🟠 <strong>URGENT: see a doctor or urgent care today</strong>"))
    elif triage.get("level") == "routine":
        marks.append(level_mark("routine", "🟢 <em>Triage: routine</em>"))
    return "".join(f"{m}\n\n" for m in marks)


def level_mark(level: str, inner: str) -> str:
    """A triage level's banner: its own colours (`CSS`), so the levels differ without the emoji font."""
    return f'<div class="triage-mark triage-{level}">{inner}</div>'


def render_reply(answer: Answer) -> str:
    """The finished answer as shown in the chat: the model's words as text, medchat's marks around them."""
    body = markdown_text(answer.text)
    if answer.emergency:
        return f"{level_mark('emergency', '🚨 <strong>EMERGENCY</strong>')}\n\n{body}"
    banner = triage_banner(answer)  # the triage advice leads, above everything else
    if answer.abstained:  # the advice paragraphs (urgent, not English), then the one sentence
        advice, _, sentence = answer.text.rpartition("\n\n")
        advice = f"{markdown_text(advice)}\n\n" if advice else ""
        return f"{banner}{advice}ℹ️ **Not enough evidence**\n\n{markdown_text(sentence)}\n\n_{DISCLAIMER}_"
    body = banner + body
    note = ""
    if answer.unsupported:
        note = f"\n\n⚠️ {len(answer.unsupported)} sentence(s) above are not supported by the sources."
    return f"{body}{note}\n\n_{DISCLAIMER}_"


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
    from chatbot.labelling.service import CompareService
    from chatbot.labelling.store.prefs import open_store
    from chatbot.labelling.variants import VariantRunner, load_variants
    from chatbot.retrieval import RetrievalParams
    from chatbot.ui.auth import Users
    from chatbot.ui.compare import build_compare_tab
    from chatbot.ui.downloads import Exports
    from chatbot.ui.results import build_results_tab

    settings = chain.settings
    store = store or open_store(settings)
    variants = variants if variants is not None else load_variants(settings.prefs.variants_file)
    users = users if users is not None else Users.load(settings.users_path)
    runner = VariantRunner(chain, variants)
    service = CompareService(store, runner, settings)
    default_variant = "settings default"

    def chain_for(variant: str) -> Chain:
        return chain if variant == default_variant else runner.chain_for(variant)

    stop_flags: dict[str, threading.Event] = {}  # session -> its answer's Stop flag

    def stop_answer(request: gr.Request) -> None:
        flag = stop_flags.get(getattr(request, "session_hash", None) or "")
        if flag is not None:
            flag.set()

    def respond(
        question: str,
        history: History,
        variant: str = default_variant,
        k: int | None = None,
        temperature: float | None = None,
        request: gr.Request = None,  # type: ignore[assignment]
    ) -> Iterator[tuple[str, History, str]]:
        question = (question or "").strip()
        if not question:
            raise gr.Error("Type a medical question first.", print_exception=False)
        earlier = [asked_text(m.get("content")) for m in history or [] if m.get("role") == "user"]
        earlier = [q for q in earlier if q]
        shown_question = markdown_text(question)
        history = [
            *(history or []),
            {"role": "user", "content": shown_question},
            {"role": "assistant", "content": ""},
        ]
        if not users.is_admin(getattr(request, "username", None)):
            variant = default_variant  # annotators must not pick (or learn) the variants they judge
        variant = variant if variant in runner.variants else default_variant
        k = max(1, min(int(k or settings.retrieval.k), settings.ui.max_k))
        active = chain_for(variant)
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
            stream = active.stream(question, history=earlier, params=params, retrieval=RetrievalParams(k))
        except MedchatError as e:
            raise gr.Error(str(e), print_exception=False) from e
        # Stop sets this session's flag; the loop then closes the stream itself, which frees the
        # model at once (a stream cancelled from outside is left unclosed and holds it for a while)
        key = getattr(request, "session_hash", None) or ""
        stopped = threading.Event()
        stop_flags[key] = stopped
        try:
            text = ""
            for piece in stream:
                if stopped.is_set():
                    break
                text += piece
                history[-1] = {"role": "assistant", "content": markdown_text(text)}
                yield "", history, ""
        except MedchatError as e:
            raise gr.Error(str(e), print_exception=False) from e
        finally:
            stream.close()  # Stop (or a closed tab) must not leave the engine held
            if stop_flags.get(key) is stopped:
                del stop_flags[key]
        if stopped.is_set():
            history[-1] = {"role": "assistant", "content": f"{markdown_text(text)}\n\n_(stopped)_"}
            yield "", history, ""
            return
        answer = stream.answer
        assert answer is not None
        history[-1] = {"role": "assistant", "content": render_reply(answer)}
        yield "", history, sources_html(answer)

    # with `from __future__ import annotations` the hint is a string Gradio cannot resolve here (gr is
    # imported in this function); it must be the class before an event is registered, or Gradio counts
    # `request` as an input and warns that it received none
    respond.__annotations__["request"] = stop_answer.__annotations__["request"] = gr.Request

    with gr.Blocks(title=settings.ui.title) as app:
        title = html.escape(settings.ui.title)
        gr.Markdown(
            f"# {title}\nAnswers from the indexed medical notes, with numbered sources.", elem_id="page-title"
        )
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
                    stop = gr.Button("Stop", elem_id="stop", interactive=False)
                    clear = gr.Button("New conversation", elem_id="clear")
                with gr.Accordion("Answer settings", open=False):
                    # admins only (set on load): annotators must not choose the variants they judge
                    variant = gr.Dropdown(
                        [default_variant, *runner.variants],
                        value=default_variant,
                        label="Variant",
                        visible=False,
                        elem_id="chat-variant",
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
                sources = gr.HTML(elem_id="sources")
        with gr.Tab("Compare", elem_id="tab-compare"):
            build_compare_tab(app, service, users)
        with gr.Tab("Results", elem_id="tab-results", visible=False) as results_tab:
            build_results_tab(app, results_tab, store, users, rounds=settings.prefs.bootstrap_rounds)
        gr.Markdown(f"_{DISCLAIMER}_")

        ask_args: dict[str, Any] = {
            "fn": respond,
            "inputs": [question, chat, variant, k_slider, temp],
            "outputs": [question, chat, sources],
        }

        # while an answer streams: Ask and the question box are closed and Stop is open, so a second
        # question cannot queue behind the first; Stop, the end of the answer or an error reopen them
        def busy() -> tuple[Any, ...]:
            return gr.Button(interactive=False), gr.Textbox(interactive=False), gr.Button(interactive=True)

        def idle() -> tuple[Any, ...]:
            return gr.Button(interactive=True), gr.Textbox(interactive=True), gr.Button(interactive=False)

        def stopping() -> tuple[Any, ...]:
            # all closed until the stopped answer has ended (its next piece, then `idle`): Gradio drops
            # a question asked while that event is still open, leaving Ask closed with nothing running
            return gr.Button(interactive=False), gr.Textbox(interactive=False), gr.Button(interactive=False)

        controls = [send, question, stop]
        events = []
        triggers = ((send.click, {"api_name": "ask"}), (question.submit, {"api_visibility": "private"}))
        for trigger, api in triggers:
            started = trigger(busy, None, controls, api_visibility="private", queue=False)
            answering = started.then(**ask_args, **api)
            answering.then(idle, None, controls, api_visibility="private", queue=False)
            events.append(answering)

        def on_stop(request: gr.Request) -> tuple[Any, ...]:
            stop_answer(request)
            return stopping()

        def on_clear(request: gr.Request) -> tuple[Any, ...]:
            stop_answer(request)
            return ([], "", *idle())

        on_stop.__annotations__["request"] = on_clear.__annotations__["request"] = gr.Request
        stop.click(on_stop, None, controls, api_visibility="private", queue=False)
        clear.click(
            on_clear,
            None,
            [chat, sources, *controls],
            cancels=events,
            api_visibility="private",
            queue=False,
        )

        def on_load(request: gr.Request) -> Any:
            return gr.Dropdown(visible=users.is_admin(getattr(request, "username", None)))

        # this module's annotations are strings (`from __future__`): Gradio finds `gr.Request` by type
        on_load.__annotations__["request"] = gr.Request

        app.load(on_load, None, [variant], api_visibility="private", queue=False)
        app.load(None, None, None, js=SHORTCUTS_JS)
    app.medchat_compare = service  # for `serve`'s prepare worker
    # for the admins-only download route (chatbot.ui.downloads), which finds them on the Blocks
    app.medchat_exports = Exports(store, users)
    return app
