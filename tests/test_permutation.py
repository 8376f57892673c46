"""``agents.common.permutation``: the minibatch shuffle of PPO and PQN.

Its values are checked against an independent construction (numpy's ``lexsort`` of the same
random bits, latest round's key first), its law by a chi-square test over all 24 orders of
4 elements and by the position marginals of a minibatch-sized permutation.
"""

from __future__ import annotations

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from plasticine_jax.agents.common import (
    PERMUTATION_TIE_BITS,
    permutation,
    permutation_rounds,
)


def reference(key: jax.Array, n: int) -> np.ndarray:
    """The documented order: elements sorted by every round's key (the last round's
    first), then by index; round ``j``'s key is drawn per position of round ``j - 1``'s
    order."""
    index_bits, rounds = permutation_rounds(n)
    order = np.arange(n)
    for k in jax.random.split(key, rounds):
        bits = np.asarray(jax.random.bits(k, (n,), jnp.uint32)).astype(np.int64)
        key_part = bits >> index_bits  # the bits the packed word keeps
        # sort positions of the current order by this round's key, ties by position
        pos = np.lexsort((np.arange(n), key_part))
        order = order[pos]
    return order


@pytest.mark.parametrize("n", [1, 2, 3, 7, 128, 1000, 2048, 5000])
def test_values_equal_a_lexsort_of_the_same_bits(n):
    fn = jax.jit(permutation, static_argnums=1)
    for seed in range(3):
        key = jax.random.PRNGKey(seed)
        got = np.asarray(fn(key, n))
        assert got.dtype == np.int32
        np.testing.assert_array_equal(np.sort(got), np.arange(n))  # a permutation
        np.testing.assert_array_equal(got, reference(key, n))


def test_rounds_give_the_stated_key_bits():
    # By hand: n = 2048 needs 11 index bits, 21 key bits a round, 2 rounds (42 >= 41 bits);
    # n = 16: 4 index bits, 28 key bits, one round (28 >= 27); n = 2: one bit, one round.
    assert permutation_rounds(2048) == (11, 2)
    assert permutation_rounds(16) == (4, 1)
    assert permutation_rounds(2) == (1, 1)
    assert permutation_rounds(1) == (1, 1)
    for n in [2, 3, 100, 2048, 2**14, 2**20, 2**30]:
        index_bits, rounds = permutation_rounds(n)
        assert 2 ** (index_bits - 1) < n <= 2**index_bits
        bits = rounds * (32 - index_bits)
        # the tie bound: n (n - 1) / 2 * 2**-bits <= 2**-PERMUTATION_TIE_BITS
        assert math.log2(n * (n - 1) / 2) - bits <= -PERMUTATION_TIE_BITS
        assert (rounds - 1) * (32 - index_bits) < 2 * index_bits + PERMUTATION_TIE_BITS - 1


@pytest.mark.parametrize("n", [0, 2**31])
def test_refuses_sizes_it_cannot_pack(n):
    with pytest.raises(ValueError, match=r"n must be in \[1, 2\*\*31\)"):
        permutation(jax.random.PRNGKey(0), n)


def test_every_order_of_four_equally_likely():
    draws = 24_000
    keys = jax.random.split(jax.random.PRNGKey(11), draws)
    perms = np.asarray(jax.jit(jax.vmap(lambda k: permutation(k, 4)))(keys))
    index = {p: i for i, p in enumerate(itertools.permutations(range(4)))}
    counts = np.bincount([index[tuple(p)] for p in perms], minlength=24)
    assert counts.sum() == draws and len(counts) == 24
    _, p_value = stats.chisquare(counts)
    assert p_value > 1e-3, counts
    # A shuffle that kept the identity more often than chance would show here too.
    assert counts[0] < 1.2 * draws / 24


def test_positions_of_a_minibatch_sized_permutation_are_uniform():
    # Where element 0 and element n - 1 land, over 4000 permutations of 2048, in 16 bins.
    n, draws = 2048, 4000
    keys = jax.random.split(jax.random.PRNGKey(3), draws)
    perms = np.asarray(jax.jit(jax.vmap(lambda k: permutation(k, n)))(keys))
    for element in (0, n - 1):
        where = np.argmax(perms == element, axis=1)
        counts = np.bincount(where * 16 // n, minlength=16)
        _, p_value = stats.chisquare(counts)
        assert p_value > 1e-3, (element, counts)
    # consecutive outputs are not correlated with the input order
    first = perms[:, 0].astype(float)
    second = perms[:, 1].astype(float)
    assert abs(np.corrcoef(first, second)[0, 1]) < 0.1
