"""``ThrombusCascadeTrainer.context_keys``: which case's coarse context each training sample gets."""
import numpy as np
import pytest

from nnunet_thrombus.training.trainer import ThrombusCascadeTrainer
from nnunet_thrombus.training.variants import ThrombusCascadeTrainer_contextSwap, ThrombusCascadeTrainer_contextSwap80


class _Holder:
    """Stands in for a trainer: context_keys needs only the swap probability and an instance __dict__."""

    def __init__(self, p):
        self.context_swap_probability = p

    context_keys = ThrombusCascadeTrainer.context_keys


def test_default_trainer_never_swaps():
    h = _Holder(ThrombusCascadeTrainer.context_swap_probability)
    h.context_keys(["a", "b", "c"], train=False)  # seen: a, b, c (others to swap with)
    np.random.seed(0)
    for _ in range(50):
        for keys in (["a", "b"], ["c", "a"], ["b", "c"]):
            assert h.context_keys(keys, train=True) == keys


def test_validation_never_swaps_and_a_lone_case_has_nobody_to_swap_with():
    h = _Holder(1.0)
    assert h.context_keys(["a", "a"], train=True) == ["a", "a"]  # only "a" seen so far
    assert h.context_keys(["a", "b"], train=False) == ["a", "b"]


def test_probability_one_always_takes_another_seen_case():
    h = _Holder(1.0)
    h.context_keys(["a", "b", "c"], train=False)  # seen: a, b, c
    np.random.seed(3)
    for _ in range(20):
        out = h.context_keys(["a", "b"], train=True)
        assert out[0] != "a" and out[1] != "b" and set(out) <= {"a", "b", "c"}


@pytest.mark.parametrize("variant, seed, low, high", [
    (ThrombusCascadeTrainer_contextSwap, 0, 340, 460),     # 800 samples at p = 0.5 (mean 400, sd 14)
    (ThrombusCascadeTrainer_contextSwap80, 1, 600, 680),   # 800 samples at p = 0.8 (mean 640, sd 11)
])
def test_the_variants_swap_their_share_of_samples(variant, seed, low, high):
    """The share is judged on what the variant's own setting does, against the share its name promises."""
    assert variant.stage1_trainer_name == "ThrombusCascadeTrainer"   # trained on the base trainer's stage 1
    h = _Holder(variant.context_swap_probability)
    h.context_keys([f"k{i}" for i in range(10)], train=False)
    np.random.seed(seed)
    swapped = sum(o != k for _ in range(400) for k, o in zip(["k0", "k1"], h.context_keys(["k0", "k1"], train=True)))
    assert low < swapped < high
