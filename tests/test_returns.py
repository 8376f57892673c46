"""GAE against a plain Python loop, with terminations and time-limit truncations."""

import numpy as np
import pytest

from plasticine_jax.agents.returns import lambda_returns, truncated_gae


def gae_loop(r, term, trunc, v, v_final, v_last, gamma, lam):
    """Reference: a backwards loop written from the definition."""
    T = len(r)
    adv = np.zeros(T)
    next_adv = 0.0
    for t in reversed(range(T)):
        if term[t]:
            bootstrap, carry = 0.0, 0.0
        elif trunc[t]:
            bootstrap, carry = v_final[t], 0.0
        else:
            bootstrap = v[t + 1] if t + 1 < T else v_last
            carry = next_adv
        delta = r[t] + gamma * bootstrap - v[t]
        adv[t] = delta + gamma * lam * carry
        next_adv = adv[t]
    return adv


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gae_matches_python_loop(seed):
    rng = np.random.default_rng(seed)
    T, gamma, lam = 12, 0.97, 0.9
    r = rng.normal(size=T)
    v = rng.normal(size=T)
    v_final = rng.normal(size=T)
    term = np.zeros(T, bool)
    trunc = np.zeros(T, bool)
    term[[3, 9]] = True
    trunc[6] = True
    v_last = 0.7
    v_tp1 = np.where(trunc, v_final, np.append(v[1:], v_last))
    discount = gamma * (1 - term)
    cut = (term | trunc).astype(float)
    got = truncated_gae(
        r.astype(np.float32), discount.astype(np.float32), v.astype(np.float32),
        v_tp1.astype(np.float32), cut.astype(np.float32), lam,
    )  # fmt: skip
    want = gae_loop(r, term, trunc, v, v_final, v_last, gamma, lam)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5)
    ret = lambda_returns(
        r.astype(np.float32), discount.astype(np.float32), v.astype(np.float32),
        v_tp1.astype(np.float32), cut.astype(np.float32), lam,
    )  # fmt: skip
    np.testing.assert_allclose(np.asarray(ret), want + v, rtol=1e-5, atol=1e-5)


def test_truncation_bootstraps_termination_does_not():
    # One step, reward 1, final value 10: truncation adds gamma*10, termination adds nothing.
    one = np.ones(1, np.float32)
    zero = np.zeros(1, np.float32)
    trunc_adv = truncated_gae(one, 0.9 * one, zero, 10 * one, one, 0.95)
    term_adv = truncated_gae(one, zero, zero, 10 * one, one, 0.95)
    np.testing.assert_allclose(np.asarray(trunc_adv), [1 + 0.9 * 10], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(term_adv), [1.0], rtol=1e-6)


def test_lambda_one_is_discounted_return():
    r = np.array([1.0, 2.0, 3.0], np.float32)
    v = np.zeros(3, np.float32)
    g = 0.5
    adv = truncated_gae(r, g * np.ones(3, np.float32), v, np.zeros(3, np.float32),
                        np.zeros(3, np.float32), 1.0)
    np.testing.assert_allclose(np.asarray(adv), [1 + 0.5 * 2 + 0.25 * 3, 2 + 0.5 * 3, 3],
                               rtol=1e-6)
