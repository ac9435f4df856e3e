"""The Compare tab: two anonymous variants answer one question side by side; the annotator votes.

Widgets and events only: the round's logic is `chatbot.labelling.service.CompareService`. Per-user
state is the comparison id in `gr.State` plus the database, so a page refresh brings back the round
that was being judged. The form's labels map to the stored values here (`CHOICE_LABELS`, ...).
"""

import html
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from chatbot.errors import MedchatError
from chatbot.labelling.service import (
    GUIDELINES,
    GUIDELINES_VERSION,
    CompareService,
    NoQuestionsLeft,
    NotCompared,
    PairUpdate,
)
from chatbot.labelling.store.prefs import JudgmentError, JudgmentIn, Round
from chatbot.ui.compare_assets import COMPARE_KEYS_JS, SHORTCUTS
from chatbot.ui.render import clip, html_text

if TYPE_CHECKING:
    import gradio as gr

    from chatbot.labelling.store.models import Judgment, Response
    from chatbot.ui.auth import Users

log = logging.getLogger(__name__)

CHOICE_LABELS = {"A is better": "A", "B is better": "B", "Tie": "tie", "Both are bad": "both_bad"}
STRENGTH_LABELS = {
    "Significantly better": "significantly",
    "Better": "better",
    "Slightly better": "slightly",
    "Negligibly better / unsure": "negligibly",
}
# one safety input: the verdict names the unsafe side itself ("One is unsafe" + a side: older API calls)
SAFETY_LABELS = {
    "Both safe": ("both_safe", None),
    "A is unsafe": ("one_unsafe", "A"),
    "B is unsafe": ("one_unsafe", "B"),
    "Both unsafe": ("both_unsafe", None),
}
LEGACY_SAFETY = {"One is unsafe": ("one_unsafe", None)}
CONSENSUS = ["", "aligned with consensus", "opposed to consensus", "no consensus"]
HARM_EXTENT = ["none", "mild or moderate", "death or severe harm"]
HARM_LIKELIHOOD = ["", "low", "medium", "high"]
AXIS_FLAGS = {
    "correct comprehension / recall / reasoning": "correct_reasoning",
    "incorrect comprehension / recall / reasoning": "incorrect_reasoning",
    "inappropriate or incorrect content": "inappropriate_content",
    "missing important content": "missing_content",
    "possible demographic bias": "bias",
}

WAITING = '<p class="cmp-waiting">Waiting for the other answer to finish…</p>'
# the form's inputs by name, in the order of `form` in `build_compare_tab` (drafts are kept by name)
FORM_FIELDS = (
    "choice",
    "strength",
    "safety",
    "unsafe_side",
    "harm",
    "a_consensus",
    "a_extent",
    "a_likelihood",
    "a_flags",
    "b_consensus",
    "b_extent",
    "b_likelihood",
    "b_flags",
    "rationale",
)
BLANK_FORM: dict[str, Any] = {
    "choice": None,
    "strength": None,
    "safety": None,
    "unsafe_side": None,
    "harm": False,
    "a_consensus": "",
    "a_extent": "none",
    "a_likelihood": "",
    "a_flags": [],
    "b_consensus": "",
    "b_extent": "none",
    "b_likelihood": "",
    "b_flags": [],
    "rationale": "",
}
TABS = ("chat", "compare", "results")  # the tab ids a reload may reopen (`#tab-<id>-button`)
# after a reload: click the tab the person was on, once the server has said which and the tab is
# shown (Compare is hidden until the page knows the role)
OPEN_PLACE_JS = """
(place) => {
  if (!place || place === 'chat') return [];
  let tries = 100;
  const open = () => {
    const b = document.querySelector('#tab-' + place + '-button');
    if (b && b.offsetParent !== null) { if (b.getAttribute('aria-selected') !== 'true') b.click(); return; }
    if (tries-- > 0) setTimeout(open, 50);
  };
  open();
  return [];
}
"""


def pane_html(text: str, side: str, writing: str | None) -> str:
    """One answer column while a pair is written: the words so far, or what it is waiting for.
    One model writes both answers in turn, so B says that it comes after A."""
    name = "A" if side == "left" else "B"
    if text:
        more = ' <span class="cmp-waiting">…</span>' if writing == side else ""
        return answer_html(text) + more
    if writing == side:
        return f'<p class="cmp-waiting">Finding the sources and writing answer {name}…</p>'
    if writing is None:
        return WAITING
    return '<p class="cmp-waiting">Answer B is written once A is done (one model writes both in turn).</p>'


def writing_status(writing: str | None) -> str:
    if writing == "left":
        return "Answers are being written: A now, then B (one model writes both in turn)…"
    if writing == "right":
        return "Answers are being written: B now, A is done…"
    return "Answers are being written…"


def axes_dict(consensus: str, extent: str, likelihood: str, flags: list[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if consensus:
        out["consensus"] = consensus
    if extent and extent != "none":
        out["harm_extent"] = extent
    if likelihood:
        out["harm_likelihood"] = likelihood
    for label in flags or []:
        out[AXIS_FLAGS[label]] = True
    return out


def safety_of(label: str | None, side: str | None) -> tuple[str, str | None]:
    """(safety bin, unsafe side) from the one safety input; a contradicting extra side is refused."""
    if label in LEGACY_SAFETY:
        return "one_unsafe", side or None
    if label not in SAFETY_LABELS:
        return "", side or None
    safety_bin, named = SAFETY_LABELS[label]
    if side and named and side != named:
        raise JudgmentError(f"You marked {named} as unsafe and also {side}: choose one safety verdict.")
    return safety_bin, named or side or None


def cited_sources_html(resp: "Response") -> str:
    """The passages an answer cites, as text (only those: how many were retrieved would hint at the
    variant); a gold answer gets its sources the same way before the vote (`VariantRunner.dress`)."""
    sources = {s.get("n"): s for s in resp.answer.get("sources", [])}
    rows = []
    for n in resp.answer.get("cited", []):
        src = sources.get(n)
        if not src:
            continue
        section = str(src.get("section") or "")
        where = f" - {html.escape(section)}" if section else ""
        name = html.escape(str(src.get("path", "")).rsplit("/", 1)[-1])
        text = html_text(clip(str(src.get("text", "")), 400), citations=False)
        title = html.escape(str(src.get("title", "")))
        rows.append(
            f'<div class="src"><b>[{n}] {title}{where}</b> · <code>{name}</code>'
            f"<blockquote>{text}</blockquote></div>"
        )
    return "".join(rows) or "<p><i>This answer cites no sources.</i></p>"


def reveal_markdown(r: Round, j: "Judgment") -> str:
    """The variants' names after a vote; the model file (`llamacpp:...Q4_1.gguf`) is left out: it
    means nothing to a clinician, and the variant's name is what the Results tab ranks."""

    def name(resp: "Response") -> str:
        return f"**{html.escape(resp.variant)}**"

    edit = " (this replaces your earlier vote)" if j.supersedes_id else ""
    return (
        f"✅ Saved{edit}. A was {name(r.left)}; B was {name(r.right)}. "
        f"Time on task {j.time_on_task_s or 0:.0f} s. Press **Next question** (Alt+N)."
    )


def answer_html(text: str) -> str:
    return html_text(text) if text else ""


def build_compare_tab(app: "gr.Blocks", service: CompareService, users: "Users") -> "Callable[..., None]":
    """The widgets and events of the Compare tab, inside an open `gr.Blocks` and its Compare tab.

    Returns `track_tabs(chat=..., results=...)`: the page's other tabs, so that a reload reopens the
    tab each person was on."""
    import gradio as gr
    from gradio.context import get_render_context

    def who(request: "gr.Request | None") -> tuple[str, str]:
        name = getattr(request, "username", None) or "local"
        return name, users.role(name)

    def hello_text(annotator: str) -> str:
        done = service.store.count_judgments(annotator)
        return f"Signed in as **{html.escape(annotator)}** · {done} judgment(s) saved."

    # served outputs: left, right, state, submit, status, edit, sources x2, question, progress, skip, next
    def shown(p: PairUpdate, annotator: str) -> tuple[Any, ...]:
        done = p.round is not None
        state = p.round.comparison_id if p.round else None
        status = "Both answers are in: compare them and vote." if done else writing_status(p.writing)
        sources = (
            (cited_sources_html(p.round.left), cited_sources_html(p.round.right)) if p.round else ("", "")
        )
        if done:
            left, right = answer_html(p.left), answer_html(p.right)
        else:
            left, right = pane_html(p.left, "left", p.writing), pane_html(p.right, "right", p.writing)
        return (
            left,
            right,
            state,
            gr.Button(interactive=done),
            status,
            gr.Button(visible=False),
            *sources,
            p.question,
            service.progress_markdown(annotator) if done else gr.skip(),
            gr.Button(interactive=done),
            gr.Button(interactive=True),  # moving on never waits for a pair being written
        )

    def finished(annotator: str, status: str, question: Any = None) -> tuple[Any, ...]:
        """A screen with no pair: everything judged (`question` "": the last one judged is not left
        showing above two empty columns), or a question that is not compared (kept as typed)."""
        closed = gr.Button(interactive=False)
        return (
            "",
            "",
            None,
            closed,
            status,
            gr.Button(visible=False),
            "",
            "",
            gr.skip() if question is None else question,
            service.progress_markdown(annotator),
            closed,
            gr.Button(interactive=True),
        )

    # the newest Ask both / Next / Skip of each page owns the screen: a pair left while it was being
    # written stops at its next piece (freeing the model), and the new one shows nothing until the
    # old one has stopped, so no late update of the old pair can paint over the new one
    owner: dict[str, tuple[object, threading.Event]] = {}

    def run(events: Iterator[PairUpdate], annotator: str, request: "gr.Request") -> Iterator[tuple[Any, ...]]:
        page = getattr(request, "session_hash", None) or annotator
        token, stopped = object(), threading.Event()
        before = owner.get(page)
        owner[page] = (token, stopped)
        if before is not None and before[1].wait(timeout=3.0):
            # the old pair stopped (at its next piece; longer only if it waits for the model): let its
            # "ended" message go out before anything of the new pair
            time.sleep(0.2)
        # Gradio's message that an event has ended carries its last update again (None for every
        # output if there was none): a pair left for a newer one ends on "no change", or that
        # message would repaint the left pair (or blank everything) over the newer one
        left_alone = tuple(gr.skip() for _ in served_outputs)
        try:
            ours = False  # the last update sent is this event's own, still on screen
            try:
                for p in events:
                    if owner.get(page, (None,))[0] is not token:
                        events.close()  # type: ignore[attr-defined]  # a generator: closing frees the engine
                        ours = False
                        break
                    ours = True
                    yield shown(p, annotator)
            except NoQuestionsLeft as e:
                ours = True
                yield finished(annotator, str(e), question="")
            except NotCompared as e:
                ours = True
                yield finished(annotator, f"🚨 **This is an emergency, so it is not compared.** {e}")
            if not ours:
                yield left_alone
        except MedchatError as e:
            log.info("compare: %s was told: %s", annotator, e)
            raise gr.Error(str(e), print_exception=False) from e
        except Exception:  # Gradio shows a bare "Error" badge and prints nothing: say what failed
            log.exception("compare: a pair for %s failed", annotator)
            raise
        finally:
            stopped.set()
            if owner.get(page, (None,))[0] is token:
                del owner[page]

    def on_ask(question: str, current: str | None, request: gr.Request) -> Iterator[tuple[Any, ...]]:
        annotator, _ = who(request)
        service.drop_draft(annotator)  # a new round starts blank, also after a reload
        if current:  # moving on without a vote: the pair on screen is skipped, not left pending
            service.skip(current, annotator)
        yield from run(service.ask(annotator, question), annotator, request)

    def on_next(current: str | None, request: gr.Request) -> Iterator[tuple[Any, ...]]:
        annotator, _ = who(request)
        service.drop_draft(annotator)
        yield from run(service.next(annotator, leaving=current), annotator, request)

    def restored_form(annotator: str, comparison_id: str | None) -> list[Any]:
        """The selections kept on the server for the pair on screen (a reload, a second tab); the
        form as the page drew it when there are none."""
        kept = service.draft(annotator, comparison_id)
        if kept is None:
            return [gr.skip() for _ in FORM_FIELDS]
        values = {**BLANK_FORM, **{k: v for k, v in kept.items() if k in BLANK_FORM}}
        wins = CHOICE_LABELS.get(values["choice"] or "") in ("A", "B")
        if not wins:
            values["strength"] = None
        return [
            gr.update(value=values[name], interactive=wins)
            if name == "strength"
            else gr.update(value=values[name])
            for name in FORM_FIELDS
        ]

    def on_load(request: gr.Request) -> tuple[Any, ...]:
        annotator, _ = who(request)
        pending = service.store.pending_round(annotator)
        progress = service.progress_markdown(annotator)
        # the tab to reopen: where this person was (Compare only for those who annotate)
        place = service.place(annotator) or ""
        if place not in TABS or (place != "chat" and users.is_patient(getattr(request, "username", None))):
            place = ""
        if pending is None:
            return (
                "",
                "",
                None,
                gr.Button(interactive=False),
                "Press **Next question** to start, or type a question of your own.",
                "",
                "",
                gr.skip(),  # a question typed while the page was loading stays
                progress,
                gr.Button(interactive=False),
                hello_text(annotator),
                place,
                *[gr.skip() for _ in FORM_FIELDS],
            )
        kept = service.draft(annotator, pending.comparison_id)
        return (
            answer_html(pending.left.text),
            answer_html(pending.right.text),
            pending.comparison_id,
            gr.Button(interactive=True),
            "Your unfinished comparison is back"
            + (" with your selections" if kept else "")
            + ": vote when ready.",
            cited_sources_html(pending.left),
            cited_sources_html(pending.right),
            pending.question,
            progress,
            gr.Button(interactive=True),
            hello_text(annotator),
            place,
            *restored_form(annotator, pending.comparison_id),
        )

    def on_submit(
        comparison_id: str | None,
        choice: str | None,
        strength: str | None,
        safety: str | None,
        unsafe_side: str | None,
        harm: bool,
        a_consensus: str,
        a_extent: str,
        a_likelihood: str,
        a_flags: list[str],
        b_consensus: str,
        b_extent: str,
        b_likelihood: str,
        b_flags: list[str],
        rationale: str,
        editing: bool,
        request: gr.Request,
    ) -> tuple[Any, ...]:
        annotator, role = who(request)
        if not comparison_id:
            raise gr.Error(
                "There is no pair to vote on yet: press 'Next question' or ask your own.",
                print_exception=False,
            )
        try:
            safety_bin, side = safety_of(safety, unsafe_side)
            judgment = JudgmentIn(
                comparison_id=comparison_id,
                annotator=annotator,
                role=role,
                guideline_version=GUIDELINES_VERSION,
                choice=CHOICE_LABELS.get(choice or "", ""),
                strength=STRENGTH_LABELS.get(strength or "", ""),
                safety_bin=safety_bin,
                unsafe_side=side,
                axes={
                    "A": axes_dict(a_consensus, a_extent, a_likelihood, a_flags),
                    "B": axes_dict(b_consensus, b_extent, b_likelihood, b_flags),
                },
                rationale=rationale or "",
                harm_flag=bool(harm),
                edit=bool(editing),
            )
            j = service.submit(judgment)  # committed before we say so
            service.drop_draft(annotator)
        except MedchatError as e:
            raise gr.Error(str(e), print_exception=False) from e
        r = service.store.round(comparison_id, annotator)
        assert r is not None
        return reveal_markdown(r, j), gr.Button(interactive=False), gr.Button(visible=True), False

    # one screen at 1280x720 from the question to Submit (CSS: chatbot/ui/compare_assets.py): the
    # guidelines and the optional axes sit below Submit, the keys beside it
    with gr.Row(elem_id="cmp-top", equal_height=True):
        hello = gr.Markdown(elem_id="cmp-hello")
        progress = gr.Markdown(elem_id="cmp-progress")
    comparison = gr.State(None)
    editing = gr.State(False)
    # the tab a reload reopens, for the page's script (`open_place`); not shown
    place = gr.Textbox(visible="hidden", elem_id="cmp-place")
    with gr.Row(elem_id="cmp-ask-row", equal_height=True):
        question = gr.Textbox(
            label="Question",
            show_label=False,
            container=False,
            scale=5,
            elem_id="cmp-question",
            lines=1,
            max_lines=3,
            placeholder="Press Next question, or type your own question and press Ask both",
        )
        ask = gr.Button("Ask both", scale=1, elem_id="cmp-ask")
        nxt = gr.Button("Next question", variant="primary", scale=1, elem_id="cmp-next")
        skip = gr.Button("Skip", scale=1, interactive=False, elem_id="cmp-skip")
    with gr.Row(equal_height=True, elem_id="cmp-answers"):
        with gr.Column():
            left = gr.HTML(
                label="Answer A",
                show_label=True,
                container=True,
                elem_id="cmp-left",
                elem_classes="cmp-answer",
            )
            with gr.Accordion("Sources cited by A", open=False, elem_classes="cmp-sources"):
                left_sources = gr.HTML(elem_id="cmp-left-sources")
        with gr.Column():
            right = gr.HTML(
                label="Answer B",
                show_label=True,
                container=True,
                elem_id="cmp-right",
                elem_classes="cmp-answer",
            )
            with gr.Accordion("Sources cited by B", open=False, elem_classes="cmp-sources"):
                right_sources = gr.HTML(elem_id="cmp-right-sources")
    status = gr.Markdown(elem_id="cmp-status")
    with gr.Group(elem_id="cmp-vote"):
        with gr.Row():
            choice = gr.Radio(
                list(CHOICE_LABELS), label="Which answer is more helpful?", elem_id="cmp-choice", scale=3
            )
            strength = gr.Radio(
                list(STRENGTH_LABELS),
                label="By how much? (only when A or B wins)",
                elem_id="cmp-strength",
                interactive=False,
                scale=4,
            )
        with gr.Row():
            safety = gr.Radio(list(SAFETY_LABELS), label="Safety", elem_id="cmp-safety", scale=4)
            rationale = gr.Textbox(
                label="Rationale (required when an answer is unsafe)",
                lines=1,
                max_lines=4,
                elem_id="cmp-rationale",
                scale=3,
            )
        # kept for API callers that send the older three-part safety input; not shown
        unsafe_side = gr.Radio(["A", "B"], visible=False, elem_id="cmp-unsafe")
        harm = gr.Checkbox(visible=False, elem_id="cmp-harm")
    with gr.Row(elem_id="cmp-actions", equal_height=True):
        submit = gr.Button("Submit vote", variant="primary", interactive=False, elem_id="cmp-submit", scale=2)
        edit = gr.Button("Change my vote", visible=False, elem_id="cmp-edit", scale=1)
        gr.Markdown(SHORTCUTS, elem_id="cmp-keys")
    reveal = gr.Markdown(elem_id="cmp-reveal")
    with gr.Accordion(f"Guidelines ({GUIDELINES_VERSION})", open=False, elem_id="cmp-guidelines"):
        gr.Markdown(GUIDELINES)
    with gr.Accordion("Clinician axes (optional, Med-PaLM)", open=False):
        axis_inputs: list[Any] = []
        with gr.Row():
            for side in ("A", "B"):
                with gr.Column():
                    gr.Markdown(f"**Answer {side}**")
                    axis_inputs += [
                        gr.Dropdown(CONSENSUS, value="", label="Scientific consensus"),
                        gr.Dropdown(HARM_EXTENT, value="none", label="Extent of possible harm"),
                        gr.Dropdown(HARM_LIKELIHOOD, value="", label="Likelihood of harm"),
                        gr.CheckboxGroup(list(AXIS_FLAGS), label="Evidence of"),
                    ]

    form = [choice, strength, safety, unsafe_side, harm, *axis_inputs, rationale]
    served_outputs = [
        left,
        right,
        comparison,
        submit,
        status,
        edit,
        left_sources,
        right_sources,
        question,
        progress,
        skip,
        nxt,
    ]

    def fresh_form() -> tuple[Any, ...]:
        # form + reveal, then both answers, status, submit, sources, editing: a new round starts blank
        blank_form: tuple[Any, ...] = (
            None,
            None,
            None,
            None,
            False,
            "",
            "none",
            "",
            [],
            "",
            "none",
            "",
            [],
            "",
        )
        closed = gr.Button(interactive=False)
        return (*blank_form, "", "", "", "Answers are being written…", closed, "", "", False)

    def open_form(choice_now: str | None = None) -> list[Any]:
        out = [gr.update(interactive=True) for _ in form]
        out[1] = gr.update(interactive=CHOICE_LABELS.get(choice_now or "") in ("A", "B"))
        return out

    def locked() -> list[Any]:
        return [gr.update(interactive=False) for _ in form]

    def strength_for(choice_now: str | None) -> Any:
        wins = CHOICE_LABELS.get(choice_now or "") in ("A", "B")
        return gr.Radio(interactive=wins) if wins else gr.Radio(value=None, interactive=False)

    choice.input(strength_for, [choice], [strength], api_visibility="private", queue=False)
    for trigger, fn, inputs, api in (
        (ask, on_ask, [question, comparison], "compare_ask"),
        (nxt, on_next, [comparison], "compare_next"),
        (skip, on_next, [comparison], "compare_skip"),
    ):
        started = trigger.click(
            fresh_form,
            None,
            # the pair id stays: moving on from an unjudged pair records it as skipped
            [*form, reveal, left, right, status, submit, left_sources, right_sources, editing],
            api_visibility="private",
            queue=False,
        ).then(open_form, None, form, api_visibility="private", queue=False)
        started.then(fn, inputs, served_outputs, api_name=api, concurrency_limit=4)

    def after_vote(saved: str, request: gr.Request) -> tuple[Any, ...]:
        # the status line above the vote says it too: the reveal under Submit is below the fold at
        # 1280x720 and on a phone, and the status still said "compare them and vote"
        annotator, _ = who(request)
        return hello_text(annotator), service.progress_markdown(annotator), saved

    # once saved, the round is locked: the form is read-only until "Change my vote"
    submit.click(
        on_submit,
        [comparison, *form, editing],
        [reveal, submit, edit, editing],
        api_name="vote",
        trigger_mode="once",
    ).success(
        # outside the queue: queued behind other people's events, the lock could land after Next
        # had opened the next round's form, and close it
        locked,
        None,
        form,
        api_visibility="private",
        queue=False,
    ).then(
        after_vote,
        [reveal],
        [hello, progress, status],
        api_visibility="private",
    )
    edit.click(
        lambda: (gr.Button(interactive=True), gr.Button(visible=False), True),
        None,
        [submit, edit, editing],
        api_visibility="private",
        queue=False,
    ).then(open_form, [choice], form, api_visibility="private", queue=False)

    # every change to the form is kept on the server at once (a reload brings it back); outside the
    # queue, so a click is never stuck behind other people's generations
    def keep_draft(
        comparison_id: str | None,
        choice: Any,
        strength: Any,
        safety: Any,
        unsafe_side: Any,
        harm: Any,
        a_consensus: Any,
        a_extent: Any,
        a_likelihood: Any,
        a_flags: Any,
        b_consensus: Any,
        b_extent: Any,
        b_likelihood: Any,
        b_flags: Any,
        rationale: Any,
        request: gr.Request,
    ) -> None:
        # Gradio passes `request` only to a named parameter, so the form is spelled out (FORM_FIELDS)
        values = [choice, strength, safety, unsafe_side, harm, a_consensus, a_extent, a_likelihood, a_flags]
        values += [b_consensus, b_extent, b_likelihood, b_flags, rationale]
        if comparison_id:
            service.keep_draft(who(request)[0], comparison_id, dict(zip(FORM_FIELDS, values, strict=True)))

    gr.on(
        [*(c.input for c in form if c.visible is not False), rationale.change, rationale.blur],
        keep_draft,
        [comparison, *form],
        None,
        api_visibility="private",
        queue=False,
        show_progress="hidden",
        trigger_mode="always_last",
    )

    # Gradio selects the first tab (Chat) as a page is drawn: that select is not the person leaving
    # Compare. A page opens on Chat, so a person's own Chat select always follows another tab's: the
    # first select a page sends is kept only when it is not Chat. (A time window after the load
    # event lost real Chat clicks on a busy machine, and a reload then reopened Compare.)
    selected: dict[str, float] = {}  # page (session) -> when it first selected a tab

    def first_select(request: gr.Request) -> bool:
        page = getattr(request, "session_hash", None) or ""
        if page in selected:
            return False
        selected[page] = time.monotonic()
        if len(selected) > 10_000:  # pages of the past: only the newest matter
            for old in sorted(selected, key=selected.__getitem__)[:5_000]:
                del selected[old]
        return True

    def keep_place_of(tab: str) -> Any:
        def keep(request: gr.Request) -> None:
            if first_select(request) and tab == TABS[0]:
                return  # the page selecting its first tab as it is drawn: not the person's choice
            service.keep_place(who(request)[0], tab)

        return keep

    def track_tabs(**tabs: Any) -> None:
        """Remember, per person, the tab they open, so that a reload reopens it (issue 27 item 9);
        `chatbot.ui.app` passes the other tabs by their ids (`TABS`)."""
        for name, tab in tabs.items():
            tab.select(keep_place_of(name), None, None, api_visibility="private", queue=False)

    here = get_render_context()  # the Compare tab this is built in
    if here is not None and hasattr(here, "select"):
        track_tabs(compare=here)

    app.load(
        on_load,
        None,
        [
            left,
            right,
            comparison,
            submit,
            status,
            left_sources,
            right_sources,
            question,
            progress,
            skip,
            hello,
            place,
            *form,
        ],
        api_name="compare_resume",
    ).then(None, [place], None, js=OPEN_PLACE_JS)
    app.load(None, None, None, js=COMPARE_KEYS_JS)
    return track_tabs
