"""The chat page: a question in, a streamed answer with numbered sources out."""

from __future__ import annotations

import html
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from chatbot.safety.wording import CUT_NOTE, DISCLAIMER, STOPPED_NOTE
from chatbot.ui.compare_assets import COMPARE_CSS
from chatbot.ui.render import highlighted, markdown_text

if TYPE_CHECKING:
    import gradio as gr

    from chatbot.chain import Answer, Chain
    from chatbot.labelling.store.prefs import PreferenceStore
    from chatbot.labelling.variants import Variant
    from chatbot.retrieval import Passage
    from chatbot.ui.auth import Users

History = list[dict[str, Any]]

CHAT_GENERATIONS = 4
"""Chat answers that may use an in-process model at once (it still writes one at a time); a served
model takes `generation.parallel` (settings: `GenerationSettings.generations_at_once`)."""

# the page's own look: answers and the vote on one 1440x900 screen, long answers scroll in place
CSS = """
.gradio-container { max-width: 1400px !important; padding-top: 0 !important; }
#page-title h1 { font-size: 1.5em; margin: 4px 0 0 0; }
#page-title p { margin: 0; }
.cite { font-size: 0.85em; color: var(--color-accent); font-weight: 600; }
.src blockquote { margin: 2px 0 8px 0; font-size: 0.9em; }
#res-annotators { overflow-x: auto; }
#chat-status p { margin: 0 !important; font-size: 0.9em; color: var(--body-text-color-subdued); }
@media (max-width: 640px) {
  #chat { height: calc(100dvh - 330px) !important; min-height: 260px; }
  #page-title p { display: none; }
}
a.cite { text-decoration: none; cursor: pointer; }
a.cite:hover, a.cite:focus { text-decoration: underline; }
.not-in-sources { font-size: 0.8em; background: #fff3cd; color: #6d4c00; border: 1px solid #e0c36a;
  border-radius: 3px; padding: 0 4px; white-space: nowrap; }
details.withheld { margin-top: 6px; font-size: 0.9em; color: var(--body-text-color-subdued); }
details.src { margin-bottom: 6px; }
details.src summary { cursor: pointer; }
.src-meta { font-size: 0.85em; color: var(--body-text-color-subdued); }
.src mark { background: #fff59d; color: inherit; }
details.src.flash { outline: 3px solid var(--color-accent); border-radius: 4px; }
.triage-mark { padding: 6px 10px; border-radius: 4px; border-left: 6px solid; margin-bottom: 4px; }
.triage-emergency { background: #fde0dc; border-color: #b71c1c; color: #7f0000; font-size: 1.15em; }
.triage-urgent { background: #fff0d9; border-color: #e65100; color: #6d2c00; }
.triage-foreign { background: #e3f2fd; border-color: #1565c0; color: #0d3c61; }
.triage-routine { background: #e8f5e9; border-color: #2e7d32; color: #1b4d1f; font-size: 0.9em; }
"""
CSS += COMPARE_CSS  # the Compare tab's layout and key badges (chatbot/ui/compare_assets.py)

# the chat's citation links and copy buttons (the Compare tab's keys: chatbot/ui/compare_assets.py):
# the copy buttons copy the text as shown (Gradio's copy the escaped Markdown: "now&#46;").
SHORTCUTS_JS = """
() => {
  if (window.__medchatKeys) return;
  window.__medchatKeys = true;
  // a citation [n] in an answer opens source n in the Sources panel and scrolls to it
  document.addEventListener('click', (e) => {
    const a = e.target.closest && e.target.closest('a.cite');
    if (!a) return;
    const n = (a.textContent.match(/\\d+/) || [])[0];
    const src = n && document.querySelector('#sources #src-' + n);
    e.preventDefault();
    e.stopPropagation();
    if (!src) return;
    src.open = true;
    src.scrollIntoView({behavior: 'smooth', block: 'start'});
    src.classList.add('flash');
    setTimeout(() => src.classList.remove('flash'), 1500);
  }, true);
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
    """The sources panel for one answer, in the order of their numbers, each passage whole, with the
    words that decided a sentence's verdict highlighted; `[n]` in the answer opens passage n."""
    if answer is None:
        return ""
    if answer.emergency:
        return "<p><i>Emergency guidance is given without searching the sources.</i></p>"
    if answer.abstained:
        return (
            "<p><i>No source was relevant enough to answer from. Searched for: "
            f"{html.escape(answer.query)}</i></p>"
        )
    spans: dict[int, list[str]] = {}
    for s in answer.sentences:
        if s.get("passage") and s.get("span") and s.get("verdict") in ("supported", "contradicted"):
            spans.setdefault(int(s["passage"]), []).append(str(s["span"]))
    rows = []
    for n, p in enumerate(answer.passages, start=1):
        cited = n in answer.cited
        where = f" - {html.escape(p.section)}" if p.section else ""
        used = "quoted or cited in the answer" if cited else "found, not used in the answer"
        rows.append(
            f'<details class="src" id="src-{n}"{" open" if cited else ""}>'
            f"<summary><b>[{n}] {html.escape(p.title)}{where}</b></summary>"
            f'<div class="src-meta">{html.escape(p.source_name)} · {used}</div>'
            f"<blockquote>{highlighted(p.text, spans.get(n, []))}</blockquote></details>"
        )
    if answer.uncited:
        rows.append("<p><i>The answer cites none of these sources: check it against them.</i></p>")
    return "".join(rows)


# "medchat reads English only" in the languages the language check names (chatbot/triage/language.py)
NOT_ENGLISH_NOTICE = {
    "Spanish": "medchat solo lee y responde en inglés, a partir de fuentes en inglés. La comprobación de "
    "emergencias puede no entender su mensaje: si es una emergencia, llame al 112 o al 911 ahora.",
    "French": "medchat ne lit et ne répond qu'en anglais, à partir de sources en anglais. Le contrôle des "
    "urgences peut ne pas comprendre votre message : en cas d'urgence, appelez le 112 maintenant.",
    "German": "medchat liest und antwortet nur auf Englisch, aus englischen Quellen. Die Notfallprüfung "
    "versteht Ihre Nachricht womöglich nicht: Rufen Sie im Notfall sofort 112 an.",
    "Portuguese": "O medchat só lê e responde em inglês, a partir de fontes em inglês. A verificação de "
    "emergência pode não entender a sua mensagem: numa emergência, ligue já para o 112.",
    "Italian": "medchat legge e risponde solo in inglese, da fonti in inglese. Il controllo delle emergenze "
    "potrebbe non capire il messaggio: in caso di emergenza chiami subito il 112.",
}


def triage_banner(answer: Answer) -> str:
    """A line above a non-emergency answer, distinct per triage level. A message not in English gets
    the notice in its own language (where medchat has it) instead of a level: the English-only check
    cannot call it routine."""
    triage = answer.triage or {}
    marks = []
    if triage.get("language"):
        language = str(triage["language"])
        notice = NOT_ENGLISH_NOTICE.get(language, "")
        own = f"<br>{html.escape(notice)}" if notice else ""
        marks.append(
            level_mark(
                "foreign",
                f"🌐 <strong>Not English ({html.escape(language)})</strong>: medchat reads and answers "
                f"English only, and its emergency check may not understand this message.{own}",
            )
        )
    if triage.get("level") == "urgent":
        marks.append(level_mark("urgent", "🟠 <strong>URGENT: see a doctor or urgent care today</strong>"))
    elif triage.get("level") == "routine" and not triage.get("language"):
        marks.append(level_mark("routine", "🟢 <em>Triage: routine</em>"))
    return "".join(f"{m}\n\n" for m in marks)


def level_mark(level: str, inner: str) -> str:
    """A triage level's banner: its own colours (`CSS`), so the levels differ without the emoji font."""
    return f'<div class="triage-mark triage-{level}">{inner}</div>'


def withheld_html(sentences: list[str]) -> str:
    """The model's sentences that no source supports, under a collapsed "Not in your sources"."""
    if not sentences:
        return ""
    items = "".join(f"<li>{html.escape(s)}</li>" for s in sentences)
    return (
        f'<details class="withheld"><summary>Not in your sources ({len(sentences)}): '
        f"not shown as part of the answer</summary><ul>{items}</ul></details>"
    )


def render_reply(answer: Answer) -> str:
    """The finished answer as shown in the chat: the checked text, cited sentences linked to their
    sources, what the check withheld under "Not in your sources", a note when it was cut short."""
    body = markdown_text(answer.text, links=True)
    if answer.emergency:
        return f"{level_mark('emergency', '🚨 <strong>EMERGENCY</strong>')}\n\n{markdown_text(answer.text)}"
    banner = triage_banner(answer)  # the triage advice leads, above everything else
    if answer.abstained:  # the advice paragraphs (urgent, not English), then the one sentence
        advice, _, sentence = answer.text.rpartition("\n\n")
        advice = f"{markdown_text(advice)}\n\n" if advice else ""
        return f"{banner}{advice}ℹ️ **Not enough evidence**\n\n{markdown_text(sentence)}\n\n_{DISCLAIMER}_"
    if not answer.text.strip() and not answer.stopped:
        body = "_The sources given do not support any sentence of the model's answer._"
    parts = [banner + body]
    if answer.withheld and answer.grounding != "free":
        parts.append(withheld_html(answer.withheld))
    if answer.stopped:
        parts.append(f"_{STOPPED_NOTE}_")
    elif (
        answer.raw_text
        and answer.grounding != "extractive"
        and not answer.raw_text.rstrip().endswith((".", "!", "?", "]", ")"))
    ):
        parts.append(f"_{CUT_NOTE}_")
    parts.append(f"_{DISCLAIMER}_")
    return "\n\n".join(parts)


def status_line(answer: Answer, seconds: float) -> str:
    """What the status line says once an answer is in: how it was made and what was held back."""
    if answer.emergency:
        return "Emergency guidance shown: no sources were searched."
    if answer.abstained:
        return f"No source was relevant enough ({seconds:.1f} s)."
    parts = ["Stopped" if answer.stopped else f"Answered in {seconds:.1f} s"]
    if answer.withheld:
        parts.append(f"{len(answer.withheld)} sentence(s) not in your sources held back")
    if answer.corrected:
        parts.append(f"{len(answer.corrected)} replaced by what the source says")
    return "; ".join(parts) + "."


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
    # answers that need the model take turns here, not in Gradio's queue: an emergency message needs
    # no model, so it must never wait behind other people's generations (the chat event is unlimited)
    model_turns = threading.BoundedSemaphore(settings.generation.generations_at_once)
    # each signed-in person's conversation and sources panel, so that a reload (or a second tab)
    # opens where they were; kept in this process only, never in the browser (shared ward computers)
    conversations: dict[str, tuple[History, str]] = {}

    def remember(request: gr.Request | None, history: History, panel: str) -> None:
        user = getattr(request, "username", None)
        if user:
            conversations[user] = (list(history), panel)

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
    ) -> Iterator[tuple[str, History, str, str]]:
        """Streams (question box, conversation, sources, status line). Nothing the person typed is
        lost: an empty question only says so, and an error keeps the question in its box and says
        what happened in the conversation and the status line, where it stays."""
        typed = question or ""
        question = typed.strip()
        history = list(history or [])
        if not question:
            yield typed, history, gr.skip(), "Type a medical question first, then press Ask."
            return
        earlier = [asked_text(m.get("content")) for m in history if m.get("role") == "user"]
        earlier = [q for q in earlier if q]
        shown_question = markdown_text(question)
        before = list(history)
        history = [
            *history,
            {"role": "user", "content": shown_question},
            {"role": "assistant", "content": ""},
        ]
        if not users.is_admin(getattr(request, "username", None)):
            variant = default_variant  # annotators must not pick (or learn) the variants they judge
        variant = variant if variant in runner.variants else default_variant
        if users.is_patient(getattr(request, "username", None)):
            k, temperature = None, None  # patients have no sliders: the chain's defaults
        k = max(1, min(int(k), settings.ui.max_k)) if k else None
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

        def failed(e: Exception) -> tuple[str, History, Any, str]:
            note = f"⚠️ {markdown_text(str(e))}"
            return (
                typed,
                [
                    *before,
                    {"role": "user", "content": shown_question},
                    {"role": "assistant", "content": note},
                ],
                gr.skip(),
                f"Not answered: {e}",
            )

        try:
            stream = active.stream(question, history=earlier, params=params, retrieval=RetrievalParams(k))
        except MedchatError as e:
            yield failed(e)
            return
        # Stop sets this session's flag; the loop then closes the stream itself, which frees the
        # model at once (a stream cancelled from outside is left unclosed and holds it for a while)
        key = getattr(request, "session_hash", None) or ""
        stopped = threading.Event()
        stop_flags[key] = stopped
        started = time.perf_counter()
        holding = False
        try:
            text = ""
            # a best-of-N variant (admins only) shows nothing before all N answers are scored: say so
            writing = (stream.status or "Writing the answer…") + " (Stop ends it)"
            yield "", history, "", stream.status or "Finding the sources…"
            if not stream.emergency:
                told = False
                while not (holding := model_turns.acquire(timeout=0.2)) and not stopped.is_set():
                    if not told:
                        told = True
                        yield "", history, "", "Waiting for the model: it is answering other questions…"
            for piece in stream if holding or stream.emergency else ():
                if stopped.is_set():
                    break
                text += piece
                history[-1] = {"role": "assistant", "content": markdown_text(text, links=True)}
                yield "", history, "", writing
        except MedchatError as e:
            yield failed(e)
            return
        finally:
            stream.close()  # Stop (or a closed tab) must not leave the engine held
            if holding:
                model_turns.release()
            if stop_flags.get(key) is stopped:
                del stop_flags[key]
        answer = stream.answer
        if answer is None:  # stopped before the answer had begun
            history[-1] = {"role": "assistant", "content": f"_{STOPPED_NOTE}_\n\n_{DISCLAIMER}_"}
            yield "", history, "", "Stopped before the answer began."
            return
        history[-1] = {"role": "assistant", "content": render_reply(answer)}
        took = time.perf_counter() - started
        panel = sources_html(answer)
        remember(request, history, panel)
        yield "", history, panel, status_line(answer, took)

    # with `from __future__ import annotations` the hint is a string Gradio cannot resolve here (gr is
    # imported in this function); it must be the class before an event is registered, or Gradio counts
    # `request` as an input and warns that it received none
    respond.__annotations__["request"] = stop_answer.__annotations__["request"] = gr.Request

    with gr.Blocks(title=settings.ui.title) as app:
        title = html.escape(settings.ui.title)
        gr.Markdown(
            f"# {title}\nAnswers from the indexed medical notes, with numbered sources.", elem_id="page-title"
        )
        with gr.Tab("Chat", elem_id="tab-chat") as chat_tab, gr.Row():
            with gr.Column(scale=3):
                # tall enough to read, short enough that the question box and Ask stay on a phone's
                # screen (CSS: #chat)
                chat = gr.Chatbot(label="Conversation", show_label=False, height="60vh", elem_id="chat")
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
                status = gr.Markdown("", elem_id="chat-status")
                with gr.Accordion("Answer settings", open=False) as answer_settings:
                    # admins only (set on load): annotators must not choose the variants they judge
                    # the names are given to admins on load (`on_load`): the page's config, which
                    # everyone signed in can read, must not list what annotators judge blind
                    variant = gr.Dropdown(
                        [default_variant],
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
        # shown on load to every role but patient (hidden first, as Results is: a tab hidden after it
        # was drawn kept its button)
        with gr.Tab("Compare", elem_id="tab-compare", visible=False) as compare_tab:
            track_tabs = build_compare_tab(app, service, users)
        with gr.Tab("Results", elem_id="tab-results", visible=False) as results_tab:
            build_results_tab(app, results_tab, store, users, rounds=settings.prefs.bootstrap_rounds)
        track_tabs(chat=chat_tab, results=results_tab)  # a reload reopens the tab each person was on
        gr.Markdown(f"_{DISCLAIMER}_")

        ask_args: dict[str, Any] = {
            "fn": respond,
            "inputs": [question, chat, variant, k_slider, temp],
            "outputs": [question, chat, sources, status],
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
            # unlimited: the triage runs at once for everyone; `model_turns` limits the generations
            answering = started.then(**ask_args, **api, concurrency_limit=None)
            answering.then(idle, None, controls, api_visibility="private", queue=False)
            events.append(answering)

        def on_stop(request: gr.Request) -> tuple[Any, ...]:
            stop_answer(request)
            return stopping()

        def on_clear(request: gr.Request) -> tuple[Any, ...]:
            stop_answer(request)
            conversations.pop(getattr(request, "username", None) or "", None)
            return ([], "", "", *idle())

        on_stop.__annotations__["request"] = on_clear.__annotations__["request"] = gr.Request
        stop.click(on_stop, None, controls, api_visibility="private", queue=False)
        clear.click(
            on_clear,
            None,
            [chat, sources, status, *controls],
            cancels=events,
            api_visibility="private",
            queue=False,
        )

        def on_load(request: gr.Request) -> tuple[Any, ...]:
            user = getattr(request, "username", None)
            history, panel = conversations.get(user or "", ([], ""))
            note = "Your conversation is back." if history else ""
            patient = users.is_patient(user)  # Chat only: no Compare tab, no answer settings
            admin = users.is_admin(user)
            return (
                # choices=None would clear the list (and every chat fails: 'not in the list of
                # choices'); only an admin gets the variant names, everyone keeps the default
                gr.Dropdown(choices=[default_variant, *runner.variants], visible=True)
                if admin
                else gr.Dropdown(visible=False),
                history,
                panel,
                note,
                gr.Tab(visible=not patient),
                gr.Accordion(visible=not patient),
            )

        # this module's annotations are strings (`from __future__`): Gradio finds `gr.Request` by type
        on_load.__annotations__["request"] = gr.Request

        app.load(
            on_load,
            None,
            [variant, chat, sources, status, compare_tab, answer_settings],
            api_visibility="private",
            queue=False,
        )
        app.load(None, None, None, js=SHORTCUTS_JS)
    app.medchat_compare = service  # for `serve`'s prepare worker
    # for the admins-only download route (chatbot.ui.downloads), which finds them on the Blocks
    app.medchat_exports = Exports(store, users)
    return app
