"""Documents and model output reach the page as text: what `chatbot.ui.render` lets through."""

import html

from chatbot.ui.app import asked_text, text_of
from chatbot.ui.render import clip, html_text, markdown_text

HOSTILE = (
    "See [1]. ![x](http://h/track.png) <b style='position:fixed'>X</b> [y](http://h/p) "
    "www.evil.example <img src=http://h/i.png> [2]: http://h/def $x$ 2.5\n# Heading"
)


def test_markdown_text_leaves_no_syntax_but_keeps_citations_and_reads_back():
    md = markdown_text(HOSTILE)
    for live in ("![", "](", "<b", "<img", "http:", "www.", "$x$", "\n#"):
        assert live not in md, live
    assert md.startswith("See [1]&#46;") and "[2]&#58;" in md
    assert html.unescape(md).replace("  \n", "\n") == HOSTILE
    assert asked_text(md) == HOSTILE.strip()


def test_html_text_escapes_and_marks_citations_only():
    out = html_text("A [1] <script>x</script>\n\nB")
    assert out == '<p>A <span class="cite">[1]</span> &lt;script&gt;x&lt;/script&gt;</p><p>B</p>'


def test_gradio_6_content_parts_are_read_as_text():
    assert text_of([{"type": "text", "text": "What is HbA1c?"}]) == "What is HbA1c?"
    assert text_of({"type": "file", "file": {"path": "x.png"}}) == ""
    assert text_of("plain") == "plain"


def test_clip_cuts_at_a_word():
    assert clip("alpha beta gamma delta", 13) == "alpha beta …"
    assert clip("short", 10) == "short"


def test_the_models_bold_is_emphasis_not_asterisks_and_carries_nothing_live():
    text = "**First-line treatment** is a thiazide [2]. **<img src=http://h/x.png>** and 2 ** 3 stay text."
    md = markdown_text(text)
    assert md.startswith("**First&#45;line treatment** is")
    assert "**&#60;img src&#61;http&#58;//h/x&#46;png&#62;**" in md  # bold, but the tag is only text
    assert "2 &#42;&#42; 3" in md  # a lone ** is not emphasis
    assert html.unescape(md) == text  # reads back as typed
    out = html_text(text)
    assert out.startswith("<p><strong>First-line treatment</strong> is a thiazide")
    assert "<strong>&lt;img src=http://h/x.png&gt;</strong>" in out and "<img" not in out


def test_a_passage_in_the_sources_panel_shows_its_bold_as_emphasis_and_its_markup_as_text():
    from chatbot.chain import Answer
    from chatbot.retrieval import Passage
    from chatbot.ui.app import sources_html

    text = "- **INR 2.5 (range 2.0-3.0)**: atrial fibrillation. <img src=http://h/x.png>"
    p = Passage("c1", text, "INR test", "Targets", "inr.md", 0.57)
    out = sources_html(Answer("What INR?", "Aim for 2.5 [1].", [p], cited=[1]))
    assert "<strong>INR 2.5 (range 2.0-3.0)</strong>" in out
    assert "**" not in out and "<img" not in out and "&lt;img" in out


def test_the_triage_advice_heads_the_reply_even_when_the_sources_fall_short():
    from chatbot.chain import Answer
    from chatbot.ui.app import render_reply

    urgent = {"level": "urgent", "category": "wound"}
    text = "See a doctor today.\n\nI can't answer that."  # the chain puts the advice first
    abstained = render_reply(Answer("dog bite", text, [], abstained=True, triage=urgent))
    urgent_mark = '<div class="triage-mark triage-urgent">🟠 <strong>URGENT: see a doctor or urgent care'
    assert abstained.startswith(urgent_mark + " today</strong></div>")
    # banner, advice, then the heading right above the sentence it heads
    order = [abstained.index(s) for s in ("URGENT", "See a doctor", "Not enough evidence", "I can")]
    assert order == sorted(order)
    plain = render_reply(Answer("q", "I can't answer that.", [], abstained=True))
    assert plain.startswith("ℹ️ **Not enough evidence**\n\nI can")
    answered = render_reply(Answer("dog bite", "Clean it [1].", [], triage=urgent))
    assert answered.startswith('<div class="triage-mark triage-urgent">🟠 <strong>URGENT')
    assert "Not enough evidence" not in answered
    emergency = render_reply(Answer("q", "Call 112 now.", [], emergency=True, triage={"level": "emergency"}))
    routine = render_reply(Answer("q", "Rest [1].", [], triage={"level": "routine"}))
    assert emergency.startswith('<div class="triage-mark triage-emergency">🚨 <strong>EMERGENCY')
    assert routine.startswith('<div class="triage-mark triage-routine">')


def test_sources_are_listed_in_number_order_in_plain_words_with_the_deciding_words_marked():
    from chatbot.chain import Answer
    from chatbot.retrieval import Passage
    from chatbot.ui.app import sources_html

    low = Passage("c1", "Check INR weekly.", "INR test", "", "inr.md", 0.41)
    high = Passage(
        "c2", "Intro.\n- Aim for INR 2.5 (range 2.0-3.0) in AF.\n- Other.", "Warfarin", "", "w.md", 0.7
    )
    span = {"verdict": "supported", "passage": 2, "span": "Aim for INR 2.5 (range 2.0-3.0) in AF."}
    out = sources_html(Answer("What INR?", "Aim for 2.5 [2].", [low, high], cited=[2], sentences=[span]))
    assert out.index('id="src-1"') < out.index('id="src-2"')  # in number order, not by score
    assert "score" not in out and "cited" not in out.replace("quoted or cited in the answer", "")
    assert "found, not used in the answer" in out and "quoted or cited in the answer" in out
    assert "<mark>Aim for INR 2.5 (range 2.0-3.0) in AF.</mark>" in out
    assert "Intro.<br>- <mark>" in out  # list lines keep their breaks
    assert '<details class="src" id="src-2" open>' in out and '<details class="src" id="src-1">' in out


def test_the_leaderboard_chart_says_why_it_has_no_bars_when_every_variant_is_level():
    from chatbot.ui.results import plot_title

    level = plot_title([1000.0, 1000.2, 999.8])
    assert level.endswith("every variant is at 1000 so far, so there are no bars")
    assert plot_title([1040.0, 960.0]) == "Rating above or below the average (1000)"
    assert plot_title([]) == "Rating above or below the average (1000)"  # nothing rated yet


def test_the_win_rate_chart_has_95_percent_interval_bars_and_a_50_percent_line():
    """Issue 27 item 17: the chart showed bare bars, so 3 wins out of 4 looked decisive."""
    from chatbot.labelling.leaderboard import Rating, wilson_interval
    from chatbot.ui.results import win_rate_chart_html

    lo, hi = wilson_interval(3, 4)
    assert (round(lo, 3), round(hi, 3)) == (0.301, 0.954)
    assert wilson_interval(0, 5)[0] == 0.0 and wilson_interval(0, 5)[1] > 0.4  # never zero-width
    out = win_rate_chart_html(
        [Rating("warm", 1040, 990, 1090, 4, 3.0), Rating("cold", 960, 910, 1010, 4, 1.0)]
    )
    assert 'data-variant="warm" data-rate="0.750" data-lower="0.301" data-upper="0.954"' in out
    assert "75% won (95% interval 30% to 95%), 4 battles" in out
    assert "25% won (95% interval 5% to 70%), 4 battles" in out
    assert out.count('class="res-wr-half" style="position:absolute;left:50%') == 2  # the 50% line
    assert "dashed red line: 50%" in out and out.count('class="res-wr-ci"') == 2
    assert "No votes yet" in win_rate_chart_html([])


def test_a_negative_kappa_is_explained_in_words():
    from chatbot.labelling.leaderboard import kappa_note

    assert kappa_note(-0.25).startswith("agreement below chance: ")
    assert kappa_note(0.1) == "slight agreement" and kappa_note(0.85) == "almost perfect agreement"
    assert kappa_note(None) == ""


def test_cohens_kappa_reads_as_a_number_or_says_why_it_is_missing():
    from chatbot.ui.results import cohen_text

    text = cohen_text(
        [
            {"pair": "ann_a / ann_b", "kappa": None, "items": 3},
            {"pair": "ann_a / ann_c", "kappa": -0.25, "items": 8},
            {"pair": "ann_b / ann_c", "kappa": 0.6666, "items": 5},
        ]
    )
    assert "None" not in text
    assert "ann_a / ann_b: n/a (3 items; every vote the same category" in text
    assert "ann_a / ann_c: -0.25 (8 items; agreement below chance" in text
    assert "ann_b / ann_c: 0.67 (5 items)" in text
    assert cohen_text([]) == "n/a"
