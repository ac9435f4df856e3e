import pytest

from chatbot.conversation import is_follow_up, standalone


@pytest.mark.parametrize(
    "question",
    [
        "And for children?",
        "what about in pregnancy",
        "Is it safe?",
        "its side effects?",
        "and the dose",
        "why?",
    ],
)
def test_follow_ups_are_detected(question):
    assert is_follow_up(question)


@pytest.mark.parametrize(
    "question",
    [
        "What is the normal dose of metformin for adults?",
        "How is asthma treated in children?",
        "What is gout?",
    ],
)
def test_standalone_questions_pass_through(question):
    assert not is_follow_up(question)
    assert standalone(question, ["How is asthma treated?"]) == question


def test_a_follow_up_joins_the_previous_question():
    assert standalone("And for children?", ["What is migraine?", "How is asthma treated?"]) == (
        "How is asthma treated? And for children?"
    )
    assert standalone("And for children?", []) == "And for children?"
