"""The grounding check: one verdict per sentence, and what the user is shown because of it.

The contradicted examples are the ones a hand check of the bundled model's answers found (issue #26):
each is a sentence the model wrote against a passage of the bundled notes that says otherwise.
"""

import pytest

from chatbot.grounding import (
    CONTRADICTED,
    NOT_FOUND,
    NOT_IN_SOURCES_MARK,
    SUPPORTED,
    SentenceStream,
    check_answer,
    check_sentence,
    extract,
    extractive_text,
    present,
    sentences,
    units,
    verify_record,
)

LEVO = (
    "## How to take it\n"
    "- Levothyroxine replaces the missing hormone.\n"
    "- Take it on an empty stomach, 30-60 minutes before breakfast, and separate it from iron, "
    "calcium and antacids by at least 4 hours.\n"
)
SEPSIS = (
    "Red flags for sepsis include a respiratory rate of 25 or more, a systolic blood pressure of "
    "90 mmHg or lower, and no urine passed for 18 hours."
)
BETA = "- **Asthma**: beta blockers can trigger severe bronchospasm."
SSRI = "## Stopping an SSRI\nStopping can cause dizziness and low mood. Do not stop suddenly."
TSH = "- **High TSH, low free T4**: primary hypothyroidism (underactive thyroid)."
INR = (
    "- **INR 2.5 (range 2.0-3.0)**: atrial fibrillation, deep vein thrombosis, pulmonary embolism.\n"
    "- **INR 3.5 (range 3.0-4.0)**: some mechanical heart valves."
)
BP = "Clinic blood pressure of 140/90 mmHg or higher should be confirmed outside the clinic."
DOSE = "The usual adult dose of paracetamol is 500 mg to 1 g up to four times a day."
SCREEN = "Those aged 25-49 are invited for cervical screening every 5 years."
ROUTE = "Adrenaline is given by injection into the outer thigh muscle."
CHILD = "Children under 16 should not take aspirin."
GOUT = "Treat a flare early with an NSAID (such as naproxen), colchicine or a steroid."
STATIN = "Statins are cholesterol-lowering medicines; an NSAID such as ibuprofen is a painkiller."


def verdict(sentence: str, *passages: str):
    return check_sentence(sentence, list(passages))


@pytest.mark.parametrize(
    ("sentence", "passage", "kind"),
    [
        ("Yes, it is recommended to take levothyroxine with breakfast [1].", LEVO, "timing"),
        ("Signs of sepsis include a systolic blood pressure of 90 mmHg or higher.", SEPSIS, "direction"),
        ("Sepsis is likely when no urine has been passed for 8 hours.", SEPSIS, "figure"),
        ("A beta blocker can help treat asthma.", BETA, "direction"),
        ("SSRIs can be stopped abruptly.", SSRI, "negation"),
        ("A high TSH with low free T4 means an overactive thyroid.", TSH, "direction"),
        ("The INR range for atrial fibrillation is 3.0-4.0.", INR, "figure"),
        ("Hypertension is a clinic blood pressure of 180/120 mmHg or higher.", BP, "figure"),
        ("The usual adult dose of paracetamol is 500 g up to four times a day.", DOSE, "unit"),
        ("People aged 25-49 are invited for cervical screening yearly.", SCREEN, "figure"),
        ("Adrenaline is given by mouth as a tablet.", ROUTE, "route"),
        ("Adults under 16 should not take aspirin.", CHILD, "population"),
        ("Ibuprofen is a statin.", STATIN, "drug"),
    ],
)
def test_a_sentence_that_says_otherwise_than_its_source_is_contradicted(sentence, passage, kind):
    check = verdict(sentence, "Unrelated: the flu vaccine is offered each autumn.", passage)
    assert check.verdict == CONTRADICTED, check
    assert check.reason.startswith(kind), check.reason
    assert check.passage == 2
    assert check.span and check.span in passage  # the deciding words, verbatim


@pytest.mark.parametrize(
    ("sentence", "passage"),
    [
        ("Take levothyroxine on an empty stomach, 30-60 minutes before breakfast [1].", LEVO),
        ("Red flags include a systolic blood pressure of 90 mmHg or lower.", SEPSIS),
        ("Beta blockers can trigger severe bronchospasm in asthma.", BETA),
        ("Do not stop an SSRI suddenly.", SSRI),
        ("For atrial fibrillation the INR range is 2.0-3.0.", INR),
        ("A clinic blood pressure of 140/90 mmHg or higher should be confirmed outside the clinic.", BP),
    ],
)
def test_a_sentence_its_source_says_is_supported_with_the_span_that_says_it(sentence, passage):
    check = verdict(sentence, passage)
    assert check.verdict == SUPPORTED, check
    assert check.passage == 1 and check.span in passage and check.score >= 0.75


@pytest.mark.parametrize(
    "sentence",
    [
        "Gout is caused by eating too much fruit from Mars.",
        "Levothyroxine is best absorbed with orange juice.",
        "Warfarin doses are usually 20 mg a day.",
        "The answer should be 'yes'.",
    ],
)
def test_a_sentence_no_passage_says_is_not_found(sentence):
    check = verdict(sentence, LEVO, INR, GOUT)
    assert check.verdict == NOT_FOUND, check
    assert check.claim


def test_sentences_that_state_nothing_are_not_claims():
    checks = check_answer("I hope this helps. Please consult your doctor.", [LEVO])
    assert [(c.verdict, c.claim) for c in checks] == [(SUPPORTED, False), (SUPPORTED, False)]


def test_the_answer_shown_keeps_what_is_supported_and_replaces_what_is_contradicted():
    answer = (
        "Levothyroxine replaces the missing hormone [2]. It is best taken with breakfast [1]. "
        "It cures obesity in most people."
    )
    shown = present(answer, [LEVO])
    assert shown.text == (
        "Levothyroxine replaces the missing hormone [1]. "  # cited where it is supported, not [2]
        "Your source says otherwise: “Take it on an empty stomach, 30-60 minutes before breakfast, and "
        "separate it from iron, calcium and antacids by at least 4 hours.” [1]"
    )
    assert shown.withheld == ["It cures obesity in most people."]
    assert shown.corrected[0]["sentence"] == "It is best taken with breakfast [1]."
    assert "breakfast" in shown.corrected[0]["source"] and shown.corrected[0]["passage"] == 1


def test_free_answers_keep_unsupported_sentences_in_place_behind_a_mark():
    shown = present("Levothyroxine replaces the missing hormone. It cures obesity.", [LEVO], inline=True)
    assert (
        shown.text
        == f"Levothyroxine replaces the missing hormone [1]. {NOT_IN_SOURCES_MARK} It cures obesity."
    )


def test_list_items_keep_their_lines_and_a_withheld_item_leaves_no_empty_bullet():
    shown = present("- Levothyroxine replaces the missing hormone.\n- It cures obesity.\n- Done.", [LEVO])
    assert shown.text.splitlines() == ["- Levothyroxine replaces the missing hormone [1].", "- Done."]


def test_streamed_sentences_are_shown_only_once_complete_and_checked():
    stream = SentenceStream([LEVO])
    shown = [
        stream.feed(p) for p in ("Levothyroxine replaces ", "the missing hormone. It cu", "res obesity. ")
    ]
    shown.append(stream.feed("Take it with breakfast."))
    shown.append(stream.finish())
    assert shown[0] == ""  # half a sentence is never shown
    assert shown[1] == "Levothyroxine replaces the missing hormone [1]. "
    assert shown[2] == ""  # withheld
    assert shown[4].startswith("Your source says otherwise: “Take it on an empty stomach")


def test_extractive_answers_quote_the_sentences_that_answer_the_question():
    passages = [GOUT, LEVO, SEPSIS]
    chosen = extract("Should I take levothyroxine with breakfast?", passages, max_sentences=1)
    assert [(u.passage, u.text) for u in chosen] == [(2, units([LEVO])[1].text)]
    text = extractive_text(chosen, ["Gout", "Levothyroxine - How to take it", "Sepsis"])
    assert text.splitlines()[0] == "**Levothyroxine - How to take it**"
    assert text.splitlines()[1].startswith("- Take it on an empty stomach, 30-60 minutes before breakfast")
    assert text.endswith("4 hours [2].")
    assert all(c.verdict == SUPPORTED for c in check_answer(text, passages) if c.claim)


def test_sentences_split_at_sentence_ends_not_inside_figures_or_urls():
    assert sentences("Take 2.5 mg daily [1]. See https://example.org/a.b today.\n- Item one") == [
        "Take 2.5 mg daily [1].",
        "See https://example.org/a.b today.",
        "- Item one",
    ]


def test_verify_record_reports_each_sentence_with_its_verdict():
    out = verify_record(
        {"id": 7, "answer": "SSRIs can be stopped abruptly. Do not stop suddenly.", "passages": [SSRI]}
    )
    assert out["id"] == 7
    assert [(s["verdict"], s["passage"]) for s in out["sentences"]] == [(CONTRADICTED, 1), (SUPPORTED, 1)]
    assert set(out["sentences"][0]) == {"sentence", "verdict", "passage", "span", "score", "reason"}
    assert out["counts"] == {SUPPORTED: 1, NOT_FOUND: 0, CONTRADICTED: 1}


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"passages": ["x"]}, '"answer" is missing'),
        ({"answer": "x", "passages": []}, '"passages" is missing or empty'),
        ({"answer": "x", "passages": [1]}, "list of strings"),
        (["answer"], "JSON object"),
    ],
)
def test_verify_record_names_what_is_wrong(record, message):
    with pytest.raises(ValueError, match=message):
        verify_record(record)


# --- safety words, bare fragments and paraphrases (2026-12-05) ----------------------------------------

ACE = (
    "**Pregnancy**: ACE inhibitors and ARBs can harm the baby, especially in the second and third "
    "trimesters. Tell your doctor if you are planning a pregnancy."
)


@pytest.mark.parametrize(
    "sentence",
    ["ACE inhibitors are safe in pregnancy.", "It is safe to take an ACE inhibitor while pregnant."],
)
def test_safe_against_a_source_that_says_harm_is_contradicted(sentence):
    # three of four words in the source made this 'supported' before: 'safe' was the one missing
    c = check_sentence(sentence, [ACE])
    assert c.verdict == CONTRADICTED
    assert "harm" in c.reason
    shown = present(sentence, [ACE])
    assert "safe" not in shown.text and "can harm the baby" in shown.text


def test_a_deciding_word_no_passage_has_keeps_a_sentence_from_support():
    passage = "Shingles is caused by the varicella zoster virus, which stays in the nerves after chickenpox."
    assert check_sentence("Shingles is caused by the varicella zoster virus.", [passage]).verdict == SUPPORTED
    c = check_sentence("Shingles is caused by a contagious varicella zoster virus.", [passage])
    assert c.verdict == NOT_FOUND
    assert "contagious" in c.reason


def test_a_bare_fragment_is_checked_as_the_answer_to_its_question():
    passage = (
        "For people with diabetes, HbA1c is checked every 3-6 months until stable on treatment. "
        "An HbA1c of 48 mmol/mol (6.5%) or more on two tests means diabetes."
    )
    asked = "what HbA1c result means you have diabetes?"
    wrong = check_sentence("The answer is: 7.0%", [passage], question=asked)
    assert wrong.verdict == CONTRADICTED and "6.5" in wrong.reason
    right = check_sentence("The answer is: 6.5% or more.", [passage], question=asked)
    assert right.verdict == SUPPORTED
    # a lead-in with nothing after it is no claim, with or without the question
    assert check_sentence("The answer is:", [passage], question=asked).verdict == SUPPORTED


BEFORE_BREAKFAST = (
    "Take it once a day, ideally on an empty stomach with water, 30-60 minutes before breakfast or caffeine."
)


@pytest.mark.parametrize(
    "question, passage, answer",
    [
        ("Should I take my levothyroxine with breakfast?", LEVO, "No."),
        ("Should I take my levothyroxine with breakfast?", BEFORE_BREAKFAST, "The answer is no."),
        (
            "Is it safe to take an ACE inhibitor while pregnant?",
            ACE,
            "No, it's not safe to take an ACE inhibitor while pregnant.",
        ),
        ("Is it safe to take an ACE inhibitor while pregnant?", ACE, "No, it is not recommended."),
    ],
)
def test_a_no_that_answers_the_question_as_its_source_does_is_supported(question, passage, answer):
    c = check_sentence(answer, [passage], question=question)
    assert c.verdict == SUPPORTED, c
    assert c.passage == 1 and "answers no" in c.reason and c.span


@pytest.mark.parametrize(
    "question, passage, answer",
    [
        # "yes" where the source says otherwise, and "no" where the source agrees with the question
        ("Should I take my levothyroxine with breakfast?", BEFORE_BREAKFAST, "Yes."),
        ("Should I take my levothyroxine before breakfast?", BEFORE_BREAKFAST, "No."),
        ("Is it safe to take an ACE inhibitor while pregnant?", ACE, "Yes, it is safe."),
        # a "no" that adds a claim of its own is checked as that claim
        (
            "Should I take my levothyroxine with breakfast?",
            BEFORE_BREAKFAST,
            "No, take it with your evening meal.",
        ),
        # a figure in the question is the asker's, not a disagreement with the source's figures
        ("Can I give my 2 month old baby ibuprofen?", "Ibuprofen is not for babies under 3 months.", "No."),
        # not a yes/no question
        ("When should I take levothyroxine?", BEFORE_BREAKFAST, "No."),
    ],
)
def test_a_yes_or_no_the_source_does_not_give_is_not_supported(question, passage, answer):
    assert check_sentence(answer, [passage], question=question).verdict != SUPPORTED


def test_meaning_accepts_a_paraphrase_and_never_its_opposite(embedder):
    said = "No, it's not safe to take an ACE inhibitor while pregnant."
    assert check_sentence(said, [ACE]).verdict == NOT_FOUND  # the rules alone: too few shared words
    paraphrase = check_answer(said, [ACE], embedder=embedder)[0]
    assert paraphrase.verdict == SUPPORTED and "other words" in paraphrase.reason
    opposite = check_answer("It is safe to take an ACE inhibitor while pregnant.", [ACE], embedder=embedder)[
        0
    ]
    assert opposite.verdict == CONTRADICTED
    figure = check_answer(
        "ACE inhibitors can harm the baby in the first 2 weeks of pregnancy.", [ACE], embedder=embedder
    )[0]
    assert figure.verdict != SUPPORTED  # a figure the passage does not give is never accepted by meaning


def test_meaning_never_accepts_a_short_claim_that_changes_what_a_drug_is(embedder):
    source = (
        'Warfarin is an anticoagulant ("blood thinner") that blocks vitamin K-dependent clotting '
        "factors made in the liver."
    )
    # 0.79 close in meaning, and two of its three words are there: still not what the source says
    wrong = check_answer("Warfarin is a kind of vitamin.", [source], embedder=embedder)[0]
    assert wrong.verdict != SUPPORTED
