"""The Compare tab's logic with a scripted engine and a small real index: two variants answer,
sides are randomised and recorded, provenance is stored, the vote reveals the names."""

import random
import re
from collections import Counter

import pytest

from chatbot.chain import Chain
from chatbot.engines.fake import FakeEngine
from chatbot.labelling.service import CompareService
from chatbot.labelling.store.prefs import JudgmentError, JudgmentIn, PreferenceStore
from chatbot.labelling.variants import Variant, VariantRunner, load_variants, parse_variants
from chatbot.retrieval import open_retriever
from chatbot.ui.compare import reveal_markdown


class PerTemperatureEngine(FakeEngine):
    """A different scripted reply per variant (told apart by temperature)."""

    def stream(self, messages, params):
        self.calls.append(list(messages))
        # a label per variant, then a sentence its passage says (the grounding check keeps it, cited)
        reply = (
            f"Reply at temperature {params.temperature:.1f}. "
            "The usual target is INR 2.5 (range 2.0-3.0) for AF and venous clots [1]."
        )
        yield from reply.split(" ")[:1]
        for word in reply.split(" ")[1:]:
            yield " " + word


VARIANTS = [
    Variant(
        "warm",
        prompt={"persona": "clinician_to_patient"},
        k=2,
        generation={"temperature": 0.7, "seed": 7, "grounding": "free"},
    ),
    Variant(
        "cold",
        prompt={"persona": "clinician_to_colleague", "exemplar": "none"},
        k=3,
        generation={"temperature": 0.0, "seed": 3, "grounding": "free"},
    ),
]


@pytest.fixture
def store(tmp_path):
    s = PreferenceStore(f"sqlite:///{tmp_path / 'prefs.sqlite3'}")
    yield s
    s.close()


@pytest.fixture(scope="module")
def index_home(tmp_path_factory, embedder):
    """One small real index (a few sample notes) shared by this module's tests: ingesting is the slow part."""
    import shutil

    from chatbot.settings import Settings
    from ingestion.pipeline import ingest
    from tests.conftest import CORPUS, FEW_NOTES

    root = tmp_path_factory.mktemp("compare")
    notes = root / "notes"
    notes.mkdir()
    for name in FEW_NOTES:
        shutil.copy(CORPUS / name, notes / name)
    report = ingest([notes], settings=Settings(home=root / "home"), embedder=embedder)
    assert report.count("ingested") == len(FEW_NOTES)
    return root / "home"


@pytest.fixture
def service(index_home, embedder, store):
    from chatbot.settings import Settings

    settings = Settings(home=index_home)
    chain = Chain(settings, retriever=open_retriever(settings, embedder), engine=PerTemperatureEngine())
    return CompareService(store, VariantRunner(chain, VARIANTS), settings)


def finish(events):
    steps = list(events)
    assert steps[-1].round is not None and all(s.round is None for s in steps[:-1])
    return steps


def test_two_variants_answer_and_are_stored_with_full_provenance(service, store):
    steps = finish(service.ask("ann", "What INR should I aim for on warfarin?", rng=random.Random(0)))
    assert len(steps) > 3  # streamed piece by piece
    r = steps[-1].round
    assert {r.left.variant, r.right.variant} == {"warm", "cold"}
    assert r.left.text != r.right.text
    by_name = {x.variant: x for x in (r.left, r.right)}
    warm, cold = by_name["warm"], by_name["cold"]
    assert warm.seed == 7 and warm.generation["temperature"] == 0.7 and warm.k == 2
    assert (
        cold.seed == 3 and cold.k == 3 and cold.prompt_parts["persona"].startswith("clinician_to_colleague")
    )
    assert len(warm.chunk_ids) <= 2 and len(cold.chunk_ids) <= 3 and warm.chunk_ids
    assert warm.prompt_hash and cold.prompt_hash and warm.prompt_hash != cold.prompt_hash
    assert warm.model == "fake" and warm.quantization == "none" and warm.finished
    assert warm.answer["sources"] and warm.variant_config["name"] == "warm"
    assert store.pending_round("ann").comparison_id == r.comparison_id


def test_left_and_right_are_randomised_and_recorded(service, store):
    lefts = Counter()
    for seed in range(6):
        r = finish(service.ask(f"ann{seed}", "What is a normal INR?", rng=random.Random(seed)))[-1].round
        lefts[r.left.variant] += 1
        again = store.round(r.comparison_id, f"ann{seed}")
        assert again.left.id == r.left.id  # the side order is stored, not recomputed
    assert set(lefts) == {"warm", "cold"}


def test_voting_reveals_the_names_and_an_edit_supersedes(service, store):
    r = finish(service.ask("ann", "What is a normal INR?", rng=random.Random(1)))[-1].round
    j = service.submit(JudgmentIn(r.comparison_id, "ann", "A", "better", "both_safe", role="gp"))
    assert j.winner_response_id == r.left.id and j.guideline_version == "v2"
    text = reveal_markdown(r, j)
    assert r.left.variant in text and r.right.variant in text and "Saved" in text
    # issue 27 item 17: the variant's name, not the model file it ran on
    r.left.model = "llamacpp:SmolLM2-135M-Instruct.Q4_1.gguf"
    assert ".gguf" not in reveal_markdown(r, j) and f"A was **{r.left.variant}**;" in reveal_markdown(r, j)
    # the names are on screen now: a second vote needs "Change my vote", and is marked as cast after them
    with pytest.raises(JudgmentError, match="already voted on this pair"):
        service.submit(JudgmentIn(r.comparison_id, "ann", "B", "better", "both_safe"))
    j2 = service.submit(JudgmentIn(r.comparison_id, "ann", "tie", "", "both_safe", edit=True))
    assert j2.supersedes_id == j.id and "replaces your earlier vote" in reveal_markdown(r, j2)
    assert j2.after_reveal and not j.after_reveal
    assert store.count_judgments() == 1 and store.pending_round("ann") is None


def test_queued_items_with_overlap_give_everyone_the_same_pair(service, store):
    store.add_queue_items([{"question": "What is a normal INR?"}], batch="t", overlap=2)
    first = finish(service.next("x", rng=random.Random(0)))[-1].round
    second = finish(service.next("y", rng=random.Random(5)))[-1].round
    assert first.comparison_id == second.comparison_id
    assert {first.left.id, first.right.id} == {second.left.id, second.right.id}
    from chatbot.labelling.service import NoQuestionsLeft

    with pytest.raises(NoQuestionsLeft):
        list(service.next("x"))  # x has seen it
    with pytest.raises(NoQuestionsLeft):
        list(service.next("z"))  # overlap 2 is reached


def test_a_skipped_item_comes_back_after_the_others_and_the_end_screen_offers_it(service, store):
    """Issue 27 item 10: a skip lost the item for good, and the end said "judged every question"."""
    from chatbot.labelling.service import ALL_DONE, NoQuestionsLeft

    store.add_queue_items(
        [{"question": "What is a normal INR?"}, {"question": "What is HbA1c?"}], batch="t", overlap=1
    )
    first = finish(service.next("x", rng=random.Random(0)))[-1].round
    second = finish(service.next("x", rng=random.Random(0), leaving=first.comparison_id))[-1].round
    assert second.question == "What is HbA1c?"
    service.submit(JudgmentIn(second.comparison_id, "x", "tie", "", "both_safe"))
    # nothing new is left: the skipped one comes back, the same pair on the same sides
    again = finish(service.next("x", rng=random.Random(0)))[-1].round
    assert again.comparison_id == first.comparison_id and again.left.id == first.left.id
    assert store.pending_round("x").comparison_id == first.comparison_id  # a reload keeps it
    # skipped a second time: the end screen says how many were skipped and how to get them back
    with pytest.raises(NoQuestionsLeft) as end:
        list(service.next("x", leaving=first.comparison_id))
    assert "You skipped **1** question: press **Next question** to see it again." in str(end.value)
    assert "judged every" not in str(end.value)
    assert service.progress_markdown("x") == "**1** of **2** queued items done, **1** skipped."
    back = finish(service.next("x"))[-1].round  # taking up the offer
    service.submit(JudgmentIn(back.comparison_id, "x", "A", "better", "both_safe"))
    with pytest.raises(NoQuestionsLeft, match="All done"):  # really done: the plain end screen
        list(service.next("x"))
    assert str(ALL_DONE).startswith("🎉 **All done.**")
    assert service.progress_markdown("x") == "All **2** queued items done."


def test_gold_items_show_the_known_answers_without_calling_the_model(service, store):
    store.add_queue_items(
        [
            {
                "question": "Max paracetamol a day?",
                "gold": {"better": "4 g in adults.", "worse": "As much as you like."},
            }
        ],
        batch="gold",
    )
    calls = len(service.runner.chain.engine.calls)
    r = finish(service.next("x"))[-1].round
    texts = {re.sub(r" ?\[\d+\]", "", t) for t in (r.left.text, r.right.text)}
    # checked like a model's free answer: no few-notes passage gives the dose, so it is marked
    assert r.is_gold and texts == {"[not in your sources] 4 g in adults.", "As much as you like."}
    assert len(service.runner.chain.engine.calls) == calls


def test_gold_answers_get_their_sources_like_generated_ones(service, store):
    """Blindness: before the vote a gold pair must not stand out by citing nothing on both sides."""
    from chatbot.ui.compare import cited_sources_html

    better = "Warfarin is monitored with the INR blood test; the usual target is INR 2.5 (range 2.0-3.0)."
    store.add_queue_items(
        [{"question": "What INR should I aim for on warfarin?", "gold": {"better": better, "worse": "Any."}}],
        batch="gold",
    )
    r = finish(service.next("x"))[-1].round
    by_variant = {x.variant: x for x in (r.left, r.right)}
    good = by_variant["gold-better"]
    assert good.answer["cited"] and "[1]" in good.text and "no sources" not in cited_sources_html(good)
    assert "warfarin" in cited_sources_html(good).lower()


def test_contradictory_votes_are_refused_in_plain_words(service):
    r = finish(service.ask("ann", "What is a normal INR?", rng=random.Random(1)))[-1].round
    cid = r.comparison_id
    cases = [
        (JudgmentIn(cid, "ann", "tie", "significantly", "both_safe"), "must stay empty"),
        (JudgmentIn(cid, "ann", "A", "better", "both_safe", unsafe_side="A"), "choose one safety verdict"),
        (JudgmentIn(cid, "ann", "A", "better", "both_safe", harm_flag=True), "marked both answers safe"),
        (JudgmentIn(cid, "ann", "A", "better", "one_unsafe", unsafe_side="B"), "rationale"),
        (JudgmentIn(cid, "ann", "", "", "both_safe"), "Pick which answer"),
    ]
    for judgment, words in cases:
        with pytest.raises(JudgmentError, match=words) as e:
            service.submit(judgment)
        assert "got" not in str(e.value) and "'" not in str(e.value).split(":")[0][:3]
    j = service.submit(
        JudgmentIn(cid, "ann", "A", "better", "one_unsafe", unsafe_side="B", rationale="wrong dose")
    )
    assert j.harm_flag and j.unsafe_response_id == r.right.id


def test_preferring_the_answer_you_marked_unsafe_is_refused_whatever_the_rationale(service, store):
    """Issue 27 item 12: "A is better" with A unsafe and B safe was saved once a rationale was typed."""
    r = finish(service.ask("ann", "What is a normal INR?", rng=random.Random(1)))[-1].round
    cid = r.comparison_id
    for choice, other in (("A", "B"), ("B", "A")):
        for rationale in ("", "the dose is wrong"):
            vote = JudgmentIn(
                cid, "ann", choice, "better", "one_unsafe", unsafe_side=choice, rationale=rationale
            )
            with pytest.raises(JudgmentError) as e:
                service.submit(vote)
            said = str(e.value)
            assert f"marked {choice} unsafe and {other} safe" in said
            assert f"pick {other}, Tie or Both are bad, or change the safety verdict" in said
    assert store.count_judgments() == 0
    # what the message offers is accepted
    j = service.submit(
        JudgmentIn(cid, "ann", "B", "better", "one_unsafe", unsafe_side="A", rationale="wrong dose")
    )
    assert j.winner_response_id == r.right.id and j.unsafe_response_id == r.left.id


def test_the_compare_tab_shows_why_a_contradictory_vote_is_refused(store, settings):
    """The refusal reaches the annotator through the tab's own vote event, and nothing is saved."""
    from gradio_client import Client

    from chatbot.engines.fake import FakeEngine
    from chatbot.labelling.store.prefs import ResponseIn
    from chatbot.ui.app import build_app
    from chatbot.ui.auth import User, Users, hash_password
    from chatbot.ui.serve import launch_local

    users = Users({"ann": User("ann", "gp", hash_password("a", iterations=1000))})
    variants = [Variant("v1", k=2), Variant("v2", k=3)]
    app = build_app(Chain(settings, engine=FakeEngine()), store=store, variants=variants, users=users)
    url = launch_local(app, users)
    try:
        c = store.create_comparison(
            "What is a normal INR?", ResponseIn("v1", "2 to 3. [1]"), ResponseIn("v2", "1."), created_by="x"
        )
        store.assign(c.id, "ann", "a")
        client = Client(url, auth=("ann", "a"), verbose=False)
        client.predict(api_name="/compare_resume")  # the pair comes back to this session
        form = ("A is better", "Better", "A is unsafe", None, False, "", "none", "", [], "", "none", "", [])
        with pytest.raises(Exception, match="marked A unsafe and B safe") as e:
            client.predict(*form, "the dose is wrong", api_name="/vote")
        assert "change the safety verdict" in str(e.value)
        assert store.count_judgments() == 0
    finally:
        app.close()


def test_skip_returns_the_item_to_the_pool_and_progress_counts(service, store):
    store.add_queue_items([{"question": "What is a normal INR?"}, {"question": "What is HbA1c?"}], batch="t")
    assert store.progress("x") == (0, 2)
    first = finish(service.next("x", rng=random.Random(0)))[-1].round
    assert store.progress("x") == (1, 2)
    # moving on without a vote records a skip: x gets the other item, y gets the skipped one
    second = finish(service.next("x", rng=random.Random(0), leaving=first.comparison_id))[-1].round
    assert (
        second.question != first.question and store.pending_round("x").comparison_id == second.comparison_id
    )
    with store.session() as s:
        from chatbot.labelling.store.models import Assignment

        skipped = [a.comparison_id for a in s.query(Assignment).filter(Assignment.skipped_at.is_not(None))]
    assert skipped == [first.comparison_id]
    other = finish(service.next("y", rng=random.Random(0)))[-1].round
    assert other.comparison_id == first.comparison_id


def test_prepare_stores_pairs_ahead_and_next_serves_them_without_generating(service, store):
    store.add_queue_items([{"question": "What is a normal INR?"}, {"question": "What is HbA1c?"}], batch="t")
    store.add_queue_items(
        [{"question": "Max paracetamol?", "gold": {"better": "4 g.", "worse": "No limit."}}], batch="g"
    )
    assert service.prepare(10) == 3 and store.unprepared_items(10) == [] and store.ready_items() == 2
    calls = len(service.runner.chain.engine.calls)
    steps = list(service.next("x", rng=random.Random(0)))
    assert len(steps) == 1 and steps[0].round is not None  # the whole pair at once
    assert len(service.runner.chain.engine.calls) == calls


def test_an_emergency_typed_into_compare_is_answered_not_compared(service):
    from chatbot.labelling.service import NotCompared

    with pytest.raises(NotCompared, match=r"112|911|999|emergency"):
        list(service.ask("ann", "I think I'm having a stroke, my face is drooping"))


def test_the_shipped_variants_file_is_valid(settings):
    variants = load_variants(settings.prefs.variants_file)
    assert len(variants) >= 2
    assert len(
        {
            (
                v.k,
                v.generation.get("temperature"),
                v.generation.get("grounding"),
                tuple(sorted(v.prompt.items())),
            )
            for v in variants
        }
    ) == len(variants)
    # every variant says how its answers are shown: the settings' default (extractive) calls no model
    assert all(v.generation.get("grounding") in ("free", "checked", "extractive") for v in variants)
    from prompts import available

    for v in variants:
        for part, name in v.prompt.items():
            assert name in available(part), f"{v.name}: no {part} named {name}"


def test_bad_variant_files_say_what_is_wrong():
    from chatbot.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown prompt parts"):
        parse_variants({"variants": {"x": {"prompt": {"voice": "a"}}}})
    with pytest.raises(ConfigError, match="retrieval k"):
        parse_variants({"variants": {"x": {"retrieval": {"k": 0}}}})
    with pytest.raises(ConfigError, match="unknown generation keys"):
        parse_variants({"variants": {"x": {"generation": {"heat": 1}}}})


def test_the_app_has_the_compare_parts_and_voting_starts_closed(service):
    import gradio as gr

    from chatbot.ui.app import build_app
    from chatbot.ui.auth import Users

    app = build_app(service.runner.chain, store=service.store, variants=VARIANTS, users=Users({}))
    by_id = {getattr(c, "elem_id", None): c for c in app.blocks.values()}
    for needed in (
        "cmp-question",
        "cmp-ask",
        "cmp-next",
        "cmp-left",
        "cmp-right",
        "cmp-choice",
        "cmp-strength",
        "cmp-safety",
        "cmp-rationale",
        "cmp-submit",
        "res-board",
        "res-export",
    ):
        assert needed in by_id, needed
    assert isinstance(by_id["cmp-submit"], gr.Button) and by_id["cmp-submit"].interactive is False


@pytest.mark.slow
@pytest.mark.e2e
def test_one_round_with_the_bundled_model_records_its_identity(index_home, embedder, store):
    """The only test here with the real 4-bit model: both variants answer, provenance names the model."""
    from chatbot.engines.llamacpp import LlamaCppEngine
    from chatbot.labelling.variants import load_variants
    from chatbot.settings import Settings

    settings = Settings(home=index_home)
    settings.generation.max_new_tokens = 64
    chain = Chain(settings, retriever=open_retriever(settings, embedder), engine=LlamaCppEngine(n_ctx=4096))
    model_variants = [
        v
        for v in load_variants(settings.prefs.variants_file)
        if v.generation.get("grounding") != "extractive"
    ]
    service = CompareService(store, VariantRunner(chain, model_variants), settings)
    r = finish(service.ask("ann", "What are the symptoms of asthma?", rng=random.Random(3)))[-1].round
    for resp in (r.left, r.right):
        assert resp.model == "llamacpp:SmolLM2-135M-Instruct.Q4_1.gguf" and resp.quantization == "Q4_1"
        assert resp.text.strip() and resp.chunk_ids and resp.prompt_hash
    assert r.left.variant != r.right.variant
    j = service.submit(JudgmentIn(r.comparison_id, "ann", "B", "negligibly", "both_safe"))
    assert j.winner_response_id == r.right.id


def test_only_the_cited_sources_are_shown_under_each_answer(service):
    from chatbot.ui.compare import cited_sources_html

    r = finish(service.ask("ann", "What INR should I aim for on warfarin?", rng=random.Random(2)))[-1].round
    for resp in (r.left, r.right):
        md = cited_sources_html(resp)
        assert resp.answer["cited"] == [1]
        assert md.startswith('<div class="src"><b>[1] ') and "[2]" not in md and ".md</code>" in md


def test_prefs_prepare_on_the_command_line_fills_the_queue_once(
    few_index, medchat_home, monkeypatch, tmp_path
):
    from click.testing import CliRunner

    from chatbot.cli import main
    from chatbot.labelling.store.prefs import open_store
    from chatbot.settings import Settings

    monkeypatch.setenv("MEDCHAT_GENERATION__ENGINE", "fake")
    questions = tmp_path / "q.txt"
    questions.write_text("What is a normal INR?\nWhat is HbA1c?\n", encoding="utf-8")
    runner = CliRunner()
    assert runner.invoke(main, ["prefs", "load-questions", str(questions)]).exit_code == 0
    first = runner.invoke(main, ["prefs", "prepare"])
    assert first.exit_code == 0, first.output
    assert "prepared 2 pairs" in first.output
    # issue 27 item 14: not silent while it works; the progress goes to stderr, with done / total
    assert "preparing pairs: 0/2 (0%)" in first.stderr and "2/2 (100%) · took" in first.stderr
    assert "preparing pairs" not in first.stdout
    again = runner.invoke(main, ["prefs", "prepare"])
    assert again.exit_code == 0 and "nothing to prepare" in again.output
    store = open_store(Settings())
    assert store.unprepared_items(10) == [] and store.ready_items() == 2


def test_next_offers_a_ready_pair_before_one_that_is_still_being_written(service, store):
    """The prepare worker is writing the oldest item: Next serves the newer, prepared one at once
    (and does not start a second generation of the item the worker holds)."""
    store.add_queue_items(
        [{"question": "How is asthma treated?"}, {"question": "What is a normal INR?"}], batch="t"
    )
    oldest, newer = store.queue_items()
    service.prepare_item(newer, rng=random.Random(0))
    calls = len(service.runner.chain.engine.calls)
    with service._claim(oldest.id) as free:  # as the worker does while it writes that pair
        assert free
        steps = list(service.next("ann", rng=random.Random(1)))
        with service._claim(oldest.id) as again:
            assert not again  # a second writer is turned away
    assert len(steps) == 1 and steps[0].round.question == "What is a normal INR?"
    assert len(service.runner.chain.engine.calls) == calls  # nothing generated for Next
    # once nobody is writing it, the oldest item is served (written now, as no pair exists yet)
    steps = finish(service.next("ann", rng=random.Random(2)))
    assert steps[-1].round.question == "How is asthma treated?"


def test_prepare_leaves_an_item_that_an_annotator_is_having_written(service, store):
    store.add_queue_items(
        [{"question": "How is asthma treated?"}, {"question": "What is a normal INR?"}], batch="t"
    )
    first, second = store.queue_items()
    with service._claim(first.id):
        assert service.prepare(5, rng=random.Random(0)) == 1  # only the second
    assert store.comparison_for_item(first.id) is None
    assert store.comparison_for_item(second.id) is not None
    assert service.prepare(5, rng=random.Random(0)) == 1  # the first, once it is free again


# -- one triage per compared question (issue #32: it ran once in the service and once per variant) --


class CountingTriage:
    """Triage that says "routine" and counts the messages it was asked about."""

    def __init__(self):
        self.asked = []

    def assess(self, question):
        from chatbot.triage import TriageResult

        self.asked.append(question)
        return TriageResult("routine")

    def header(self, result):
        return ""


class WarfarinPassages:
    """A retriever without an index: the one passage the scripted replies cite, and the k asked for."""

    def __init__(self):
        self.ks = []

    def retrieve(self, question, k=None, filters=None):
        from chatbot.retrieval import Passage

        self.ks.append(k)
        text = "The usual target is INR 2.5 (range 2.0-3.0) for AF and venous clots."
        return [Passage("w1", text, "Warfarin", "", "/notes/warfarin.md", 0.9)]


@pytest.fixture
def counted(store, settings):
    triage, retriever = CountingTriage(), WarfarinPassages()
    chain = Chain(settings, retriever=retriever, engine=PerTemperatureEngine(), triage=triage)
    return CompareService(store, VariantRunner(chain, VARIANTS), settings), triage, retriever


def test_a_typed_question_is_triaged_once_for_both_answers(counted):
    service, triage, retriever = counted
    r = finish(service.ask("ann", "  What INR should I aim for on warfarin?", rng=random.Random(0)))[-1].round
    assert triage.asked == ["What INR should I aim for on warfarin?"]
    assert sorted(retriever.ks) == [2, 3]  # each variant's own k, per request
    assert {r.left.k, r.right.k} == {2, 3}


def test_a_queued_question_and_a_gold_pair_are_triaged_once_each(counted, store):
    service, triage, _ = counted
    store.add_queue_items([{"question": "What INR should I aim for on warfarin?"}], batch="q")
    store.add_queue_items(
        [{"question": "Max paracetamol a day?", "gold": {"better": "4 g.", "worse": "Any amount."}}],
        batch="gold",
    )
    assert service.prepare(5) == 2
    assert sorted(triage.asked) == ["Max paracetamol a day?", "What INR should I aim for on warfarin?"]


def test_an_overlap_one_item_goes_to_one_of_two_annotators_pressing_next_together(service, store):
    # the two-annotator walk: both pressed Next in the same second and both got one overlap-1 item
    import threading

    store.add_queue_items([{"question": "What is a normal INR?"}], batch="t", overlap=1)
    assert service.prepare(5) == 1
    real = store.next_queue_item
    both_chose = threading.Barrier(2)

    def chosen_together(*args, **kwargs):  # each has read the item as free before either serves it
        item = real(*args, **kwargs)
        if item is not None:
            both_chose.wait(timeout=10)
        return item

    store.next_queue_item = chosen_together
    got: dict[str, object] = {}

    def press_next(who: str) -> None:
        from chatbot.labelling.service import NoQuestionsLeft

        try:
            got[who] = finish(service.next(who, rng=random.Random(0)))[-1].round.comparison_id
        except NoQuestionsLeft:
            got[who] = None
        except threading.BrokenBarrierError:  # the second call found nothing free: not chosen at all
            got[who] = None

    threads = [threading.Thread(target=press_next, args=(w,)) for w in ("ann_a", "ann_b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    store.next_queue_item = real
    served = [c for c in got.values() if c is not None]
    assert len(got) == 2 and len(served) == 1, got


def test_a_skipped_item_that_others_judged_meanwhile_does_not_come_back(service, store):
    from chatbot.labelling.service import NoQuestionsLeft

    store.add_queue_items([{"question": "What is a normal INR?"}], batch="t", overlap=1)
    first = finish(service.next("x", rng=random.Random(0)))[-1].round
    with pytest.raises(NoQuestionsLeft):  # x skips it: nothing else is queued
        list(service.next("x", leaving=first.comparison_id))
    taken = finish(service.next("y", rng=random.Random(0)))[-1].round  # back in the pool: y takes it
    assert taken.comparison_id == first.comparison_id
    service.submit(JudgmentIn(taken.comparison_id, "y", "A", "better", "both_safe"))
    with pytest.raises(NoQuestionsLeft, match="All done"):  # x is not handed it a second time
        list(service.next("x"))
    assert [j.annotator for j in store.judgments()] == ["y"]
