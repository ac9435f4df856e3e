from chatbot.citations import check_citations


def test_valid_citations_are_kept_in_order_of_first_use():
    c = check_citations("Salt raises pressure [2]. Exercise lowers it [1][2].", 3)
    assert c.cited == [2, 1]
    assert c.invalid == []
    assert c.text == "Salt raises pressure [2]. Exercise lowers it [1][2]."


def test_invalid_numbers_are_removed_and_reported():
    c = check_citations("Take it daily [7]. Check the INR [1, 9].", 2)
    assert c.cited == [1]
    assert c.invalid == [7, 9]
    assert c.text == "Take it daily. Check the INR [1]."


def test_no_citation_at_all():
    c = check_citations("Drink water.", 4)
    assert (c.cited, c.invalid, c.text) == ([], [], "Drink water.")


def test_zero_is_not_a_passage():
    assert check_citations("x [0]", 3).invalid == [0]


def test_attribution_needs_the_sentences_numbers_in_the_passage():
    from chatbot.attribution import attribute

    passage = "Hypertension is diagnosed when clinic blood pressure is 140/90 mmHg or higher."
    right = attribute("Hypertension is diagnosed when clinic blood pressure is 140/90 mmHg.", [passage])
    wrong = attribute("Hypertension is diagnosed when clinic blood pressure is 180/200 mmHg.", [passage])
    assert right.added == [1] and right.text.endswith("140/90 mmHg [1].")
    assert wrong.added == [] and wrong.unsupported == [wrong.text]


def test_a_cited_sentence_with_figures_its_sources_lack_is_unsupported():
    from chatbot.attribution import attribute

    passages = [
        "Hypertension is diagnosed when clinic blood pressure is 140/90 mmHg or higher.",
        "Adults should take 75 mg of aspirin daily only when a doctor advises it.",
    ]
    text = (
        "Hypertension starts at 180/200 mmHg [1]. Aspirin 75 mg daily may be advised [2]. "
        "The threshold is 140/90 mmHg [1][2]. Take 75 mg when advised [1]. Blood pressure matters [1]."
    )
    result = attribute(text, passages)
    assert result.unsupported == ["Hypertension starts at 180/200 mmHg [1].", "Take 75 mg when advised [1]."]
    assert result.text == text  # the model's own citations are left as they are


def test_a_short_sentence_is_unsupported_when_it_names_or_numbers_what_no_passage_has():
    from chatbot.attribution import attribute

    passages = ["Rest, drink fluids and use paracetamol or ibuprofen. NICE advises against antibiotics."]
    flagged = attribute("The answer is: Doxywhise. Take 500 mg. I hope this helps.", passages).unsupported
    assert flagged == ["The answer is: Doxywhise.", "Take 500 mg."]  # an invented drug and dose
    kept = attribute("Try Paracetamol. Ask NICE. See your GP. I hope this helps.", passages)
    assert kept.unsupported == [] and kept.added == []  # too short to cite, nothing to doubt
    bold = attribute("The answer is: **Doxywhise**\n\n**Summary**", passages).unsupported
    assert bold == ["The answer is: **Doxywhise**"]  # a name in bold counts; a bold first word is not a name
