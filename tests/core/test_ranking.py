import pytest

from chatbot.ranking import edges_first, mmr, reciprocal_rank_fusion


def test_rrf_rewards_agreement_between_rankings():
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["c", "a", "d"]], c=60)
    ids = [k for k, _ in fused]
    assert ids[0] == "a"  # ranks 1 and 2
    assert ids[1] == "c"  # ranks 3 and 1
    assert set(ids) == {"a", "b", "c", "d"}
    assert fused[0][1] == pytest.approx(1 / 61 + 1 / 62)


def test_rrf_weights_and_validation():
    fused = reciprocal_rank_fusion([["a"], ["b"]], weights=[1.0, 2.0])
    assert [k for k, _ in fused] == ["b", "a"]
    with pytest.raises(ValueError):
        reciprocal_rank_fusion([["a"]], weights=[1, 2])


def test_edges_first_puts_the_strongest_at_both_ends():
    assert edges_first([1, 2, 3, 4, 5]) == [1, 3, 5, 4, 2]
    assert edges_first([1, 2]) == [1, 2]
    assert edges_first([]) == []


def test_mmr_skips_near_duplicates():
    items = ["a", "a2", "b"]
    sim = {("a", "a2"): 0.99, ("a2", "a"): 0.99}
    picked = mmr(items, [0.9, 0.89, 0.5], lambda x, y: sim.get((x, y), 0.0), k=2, lambda_=0.5)
    assert picked == ["a", "b"]
