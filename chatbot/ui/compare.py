"""The Compare tab: two anonymous variants answer one question side by side; the annotator votes.

`CompareService` holds the logic (no Gradio): serve a round, stream both answers,
store them with their provenance, record the vote. The tab wires it to widgets.
Per-user state is the comparison id in `gr.State` plus the database, so a page
refresh brings back the round that was being judged.
"""

import html
import logging
import random
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from chatbot.errors import MedchatError, storage_failure
from chatbot.limits import check_question, check_rationale
from chatbot.store.prefs import JudgmentIn, ResponseIn, Round
from chatbot.textnorm import normalise

if TYPE_CHECKING:
    import gradio as gr

    from chatbot.settings import Settings
    from chatbot.store.models import Judgment, QueueItem, Response
    from chatbot.store.prefs import PreferenceStore
    from chatbot.ui.auth import Users
    from chatbot.variants import VariantRunner

log = logging.getLogger(__name__)

CHOICE_LABELS = {"A is better": "A", "B is better": "B", "Tie": "tie", "Both are bad": "both_bad"}
STRENGTH_LABELS = {
    "Significantly better": "significantly",
    "Better": "better",
    "Slightly better": "slightly",
    "Negligibly better / unsure": "negligibly",
}
SAFETY_LABELS = {"Both safe": "both_safe", "One is unsafe": "one_unsafe", "Both unsafe": "both_unsafe"}
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
GOLD_VARIANTS = ("gold-better", "gold-worse")


class NoQuestionsLeft(MedchatError):
    """The queue has nothing left for this annotator."""


@dataclass
class Progress:
    """Both columns so far; `round` is set once both answers are stored."""

    left: str
    right: str
    round: Round | None = None


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


class CompareService:
    def __init__(self, store: "PreferenceStore", runner: "VariantRunner", settings: "Settings") -> None:
        self.store, self.runner, self.settings = store, runner, settings

    # -- serving -------------------------------------------------------------------------------

    def ask(self, annotator: str, question: str, *, rng: random.Random | None = None) -> Iterator[Progress]:
        """A free-typed question: two random variants answer it."""
        rng = rng or random.Random()
        check_question(question or "", self.settings.limits)  # before the gate or a model sees it
        question = normalise(question or "").strip()
        if not question:
            raise MedchatError("type a question, or take the next one from the queue")
        a, b = rng.sample(sorted(self.runner.variants), 2)
        yield from self._generate(annotator, question, a, b, rng=rng, queue_item=None)

    def next(self, annotator: str, *, rng: random.Random | None = None) -> Iterator[Progress]:
        """The next queued item for this annotator (its stored pair if someone already generated it)."""
        rng = rng or random.Random()
        item = self.store.next_queue_item(annotator, gold_ratio=self.settings.prefs.gold_ratio, rng=rng)
        if item is None:
            raise NoQuestionsLeft(
                "no queued questions left for you: type your own, or ask an admin to load more"
            )
        existing = self.store.comparison_for_item(item.id)
        if existing is not None:
            yield self._serve(existing.id, annotator, rng)
            return
        if item.is_gold:
            assert item.gold_better is not None and item.gold_worse is not None
            better = ResponseIn(GOLD_VARIANTS[0], item.gold_better, model="gold")
            worse = ResponseIn(GOLD_VARIANTS[1], item.gold_worse, model="gold")
            c = self.store.create_comparison(
                item.question, better, worse, created_by=annotator, queue_item_id=item.id, is_gold=True
            )
            yield self._serve(c.id, annotator, rng)
            return
        a, b = rng.sample(sorted(self.runner.variants), 2)
        yield from self._generate(annotator, item.question, a, b, rng=rng, queue_item=item)

    def _serve(self, comparison_id: str, annotator: str, rng: random.Random) -> Progress:
        self.store.assign(comparison_id, annotator, rng.choice("ab"))
        r = self.store.round(comparison_id, annotator)
        assert r is not None
        return Progress(r.left.text, r.right.text, r)

    def _generate(
        self,
        annotator: str,
        question: str,
        a: str,
        b: str,
        *,
        rng: random.Random,
        queue_item: "QueueItem | None",
    ) -> Iterator[Progress]:
        left_slot = rng.choice("ab")
        texts = {"a": "", "b": ""}
        stored: dict[str, ResponseIn] = {}
        # one after the other: a single local model cannot interleave two generations
        for slot in (left_slot, "b" if left_slot == "a" else "a"):
            name = a if slot == "a" else b
            t0 = time.perf_counter()
            run = self.runner.run(name, question)
            try:
                for piece in run.stream:
                    texts[slot] += piece
                    yield Progress(texts[left_slot], texts["b" if left_slot == "a" else "a"])
            finally:
                run.stream.close()
            answer = run.stream.answer
            assert answer is not None
            texts[slot] = answer.text
            stored[slot] = ResponseIn.from_answer(
                answer,
                variant=name,
                variant_config=run.variant.as_dict(),
                generation=asdict(run.params),
                k=run.variant.k or self.settings.retrieval.k,
                seconds=round(time.perf_counter() - t0, 3),
            )
        c = self.store.create_comparison(
            question,
            stored["a"],
            stored["b"],
            created_by=annotator,
            queue_item_id=queue_item.id if queue_item else None,
        )
        # a racing annotator may have stored this queued item first: then everyone judges that pair
        self.store.assign(c.id, annotator, left_slot)
        r = self.store.round(c.id, annotator)
        assert r is not None
        yield Progress(r.left.text, r.right.text, r)

    # -- voting --------------------------------------------------------------------------------

    def submit(self, judgment: JudgmentIn) -> "Judgment":
        check_rationale(judgment.rationale, self.settings.limits)
        judgment.guideline_version = judgment.guideline_version or self.settings.prefs.guideline_version
        try:
            return self.store.submit(judgment)
        except Exception as e:  # a full disk or read-only database: a sentence, not SQLAlchemy's text
            failure = storage_failure(e, "your vote")
            if failure is None:
                raise
            raise failure from e


def cited_sources_markdown(resp: "Response") -> str:
    """The passages an answer cites (only those: how many were retrieved would hint at the variant)."""
    sources = {s.get("n"): s for s in resp.answer.get("sources", [])}
    rows = []
    for n in resp.answer.get("cited", []):
        src = sources.get(n)
        if not src:
            continue
        where = f" - {html.escape(str(src.get('section') or ''))}" if src.get("section") else ""
        name = html.escape(str(src.get("path", "")).rsplit("/", 1)[-1])
        text = html.escape(str(src.get("text", ""))[:400]).replace("\n", " ")
        rows.append(f"**[{n}] {html.escape(str(src.get('title', '')))}{where}** · `{name}`\n\n> {text}")
    return "\n\n".join(rows) or "_No cited sources._"


def reveal_markdown(r: Round, j: "Judgment") -> str:
    def name(resp: "Response") -> str:
        model = f" · {html.escape(resp.model)}" if resp.model else ""
        return f"**{html.escape(resp.variant)}**{model}"

    edit = " (this replaces your earlier vote)" if j.supersedes_id else ""
    return (
        f"✅ Saved{edit}. A was {name(r.left)}; B was {name(r.right)}. "
        f"Time on task {j.time_on_task_s or 0:.0f} s. Take the next question or type your own."
    )


def build_compare_tab(app: "gr.Blocks", service: CompareService, users: "Users") -> None:
    """The widgets and events of the Compare tab, inside an open `gr.Blocks`."""
    import gradio as gr

    def who(request: "gr.Request | None") -> tuple[str, str]:
        name = getattr(request, "username", None) or "local"
        return name, users.role(name)

    def shown(p: Progress, done: bool) -> tuple[Any, ...]:
        state = p.round.comparison_id if p.round else None
        status = "Both answers are in: compare them and vote." if done else "Answers are being written…"
        sources = (
            (cited_sources_markdown(p.round.left), cited_sources_markdown(p.round.right))
            if p.round
            else ("", "")
        )
        return (
            p.left,
            p.right,
            state,
            gr.Button(interactive=done),
            status,
            gr.Button(visible=False),
            *sources,
        )

    def run(events: Iterator[Progress]) -> Iterator[tuple[Any, ...]]:
        try:
            last = None
            for p in events:
                last = p
                yield shown(p, p.round is not None)
            if last is None:
                raise gr.Error("nothing to show")
        except MedchatError as e:
            raise gr.Error(str(e)) from e

    def on_ask(question: str, request: gr.Request) -> Iterator[tuple[Any, ...]]:
        annotator, _ = who(request)
        yield from run(service.ask(annotator, question))

    def on_next(request: gr.Request) -> Iterator[tuple[Any, ...]]:
        annotator, _ = who(request)
        yield from run(service.next(annotator))

    def on_load(request: gr.Request) -> tuple[Any, ...]:
        annotator, _ = who(request)
        done = service.store.count_judgments(annotator)
        pending = service.store.pending_round(annotator)
        hello = f"Signed in as **{html.escape(annotator)}** · {done} judgment(s) saved."
        if pending is None:
            return (
                "",
                "",
                None,
                gr.Button(interactive=False),
                "Type a question or take the next one.",
                "",
                "",
                hello,
            )
        return (
            pending.left.text,
            pending.right.text,
            pending.comparison_id,
            gr.Button(interactive=True),
            "Your unfinished comparison is back: vote when ready.",
            cited_sources_markdown(pending.left),
            cited_sources_markdown(pending.right),
            hello,
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
        request: gr.Request,
    ) -> tuple[Any, ...]:
        annotator, role = who(request)
        if not comparison_id:
            raise gr.Error("there is no comparison to vote on: ask a question or take the next one")
        judgment = JudgmentIn(
            comparison_id=comparison_id,
            annotator=annotator,
            role=role,
            guideline_version=service.settings.prefs.guideline_version,
            choice=CHOICE_LABELS.get(choice or "", ""),
            strength=STRENGTH_LABELS.get(strength or "", ""),
            safety_bin=SAFETY_LABELS.get(safety or "", ""),
            unsafe_side=unsafe_side or None,
            axes={
                "A": axes_dict(a_consensus, a_extent, a_likelihood, a_flags),
                "B": axes_dict(b_consensus, b_extent, b_likelihood, b_flags),
            },
            rationale=rationale or "",
            harm_flag=bool(harm),
        )
        try:
            j = service.submit(judgment)  # committed before we say so
        except MedchatError as e:
            raise gr.Error(str(e)) from e
        r = service.store.round(comparison_id, annotator)
        assert r is not None
        return reveal_markdown(r, j), gr.Button(interactive=False), gr.Button(visible=True)

    gr.Markdown(
        "Two anonymous answers to the same question. Read both, then vote. "
        "The names are shown after you submit."
    )
    hello = gr.Markdown(elem_id="cmp-hello")
    comparison = gr.State(None)
    with gr.Row():
        question = gr.Textbox(label="Question", scale=4, elem_id="cmp-question", lines=1)
        ask = gr.Button("Ask both", variant="primary", scale=1, elem_id="cmp-ask")
        nxt = gr.Button("Next question", scale=1, elem_id="cmp-next")
    with gr.Row(equal_height=True):
        with gr.Column():
            gr.Markdown("### Answer A")
            left = gr.Markdown(elem_id="cmp-left", height=360)
            with gr.Accordion("Sources cited by A", open=False):
                left_sources = gr.Markdown(elem_id="cmp-left-sources")
        with gr.Column():
            gr.Markdown("### Answer B")
            right = gr.Markdown(elem_id="cmp-right", height=360)
            with gr.Accordion("Sources cited by B", open=False):
                right_sources = gr.Markdown(elem_id="cmp-right-sources")
    status = gr.Markdown(elem_id="cmp-status")
    with gr.Group():
        choice = gr.Radio(list(CHOICE_LABELS), label="Which answer is more helpful?", elem_id="cmp-choice")
        strength = gr.Radio(list(STRENGTH_LABELS), label="By how much?", elem_id="cmp-strength")
        with gr.Row():
            safety = gr.Radio(list(SAFETY_LABELS), label="Safety", elem_id="cmp-safety")
            unsafe_side = gr.Radio(["A", "B"], label="If one is unsafe: which?", elem_id="cmp-unsafe")
            harm = gr.Checkbox(label="Either answer could cause harm", elem_id="cmp-harm")
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
    rationale = gr.Textbox(
        label="Rationale (required when a harm flag is set)", lines=2, elem_id="cmp-rationale"
    )
    with gr.Row():
        submit = gr.Button("Submit vote", variant="primary", interactive=False, elem_id="cmp-submit")
        edit = gr.Button("Change my vote", visible=False, elem_id="cmp-edit")
    reveal = gr.Markdown(elem_id="cmp-reveal")

    form = [choice, strength, safety, unsafe_side, harm, *axis_inputs, rationale]
    served_outputs = [left, right, comparison, submit, status, edit, left_sources, right_sources]

    def fresh_form() -> tuple[Any, ...]:
        # form + reveal, then both answers, the state, status, submit: a new round starts blank and closed
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
            "",
        )
        closed = gr.Button(interactive=False)
        return (*blank_form, "", "", None, "Answers are being written…", closed, "", "")

    def locked() -> list[Any]:
        return [gr.update(interactive=False) for _ in form]

    def unlocked() -> list[Any]:
        return [gr.update(interactive=True) for _ in form]

    for trigger, fn, inputs, api in (
        (ask, on_ask, [question], "compare_ask"),
        (nxt, on_next, [], "compare_next"),
    ):
        trigger.click(
            fresh_form,
            None,
            [*form, reveal, left, right, comparison, status, submit, left_sources, right_sources],
            api_visibility="private",
        ).then(unlocked, None, form, api_visibility="private").then(
            fn, inputs, served_outputs, api_name=api, concurrency_limit=4
        )
    # once saved, the round is locked: the form is read-only until "Change my vote"
    submit.click(
        on_submit,
        [comparison, *form],
        [reveal, submit, edit],
        api_name="vote",
        trigger_mode="once",
    ).success(locked, None, form, api_visibility="private")
    edit.click(
        lambda: (gr.Button(interactive=True), gr.Button(visible=False)),
        None,
        [submit, edit],
        api_visibility="private",
    ).then(unlocked, None, form, api_visibility="private")
    app.load(
        on_load,
        None,
        [left, right, comparison, submit, status, left_sources, right_sources, hello],
        api_name="compare_resume",
    )
