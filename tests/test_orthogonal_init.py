"""Guards against the jaxlib 0.10.x LAPACK deadlock and checks our LAPACK-free init."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from plasticine_jax.networks.init import orthogonal


@pytest.mark.timeout(240)
def test_vmapped_flax_orthogonal_init_does_not_hang():
    # jaxlib 0.10.x hangs here forever (batched QR under jit(vmap)); the pin excludes it
    # and the timeout turns a hang into a failure.
    init = jax.jit(jax.vmap(lambda k: nn.initializers.orthogonal()(k, (32, 32))))
    for i in range(300):
        w = init(jax.random.split(jax.random.PRNGKey(i), 4))
    w = np.asarray(w)
    np.testing.assert_allclose(w[0].T @ w[0], np.eye(32), atol=1e-4)


@pytest.mark.parametrize("shape", [(16, 16), (40, 8), (8, 40), (3, 3, 4, 16)])
def test_gram_schmidt_orthogonal(shape):
    w = np.asarray(jax.jit(lambda k: orthogonal(2.0)(k, shape))(jax.random.PRNGKey(0)))
    assert w.shape == shape
    m = w.reshape(-1, shape[-1]) / 2.0
    gram = m.T @ m if m.shape[0] >= m.shape[1] else m @ m.T
    np.testing.assert_allclose(gram, np.eye(gram.shape[0]), atol=1e-5)


def test_gram_schmidt_vmaps_and_differs_per_seed():
    ws = jax.jit(jax.vmap(lambda k: orthogonal()(k, (8, 8))))(
        jax.random.split(jax.random.PRNGKey(0), 3)
    )
    ws = np.asarray(ws)
    assert not np.allclose(ws[0], ws[1])
    one = np.asarray(orthogonal()(jax.random.split(jax.random.PRNGKey(0), 3)[1], (8, 8)))
    np.testing.assert_allclose(ws[1], one, atol=1e-5)
    assert jnp.isfinite(ws).all()


@pytest.mark.parametrize("shape", [(64, 16), (32, 32), (8, 40), (3, 3, 4, 16), (1024, 128)])
def test_gram_schmidt_equals_numpy_qr_of_the_same_gaussian(shape):
    """The initialiser is the Q of the QR of its Gaussian draw with R's diagonal made
    positive (numpy's Householder QR, float64), transposed when the kernel is wide."""
    import math

    key = jax.random.PRNGKey(7)
    rows, cols = math.prod(shape[:-1]), shape[-1]
    m, n = (rows, cols) if rows >= cols else (cols, rows)
    a = np.asarray(jax.random.normal(key, (m, n), jnp.float32), np.float64)
    q, r = np.linalg.qr(a)
    q = q * np.sign(np.diag(r))
    want = (q if rows >= cols else q.T).reshape(shape)
    got = np.asarray(orthogonal(2.0)(key, shape)) / 2.0
    np.testing.assert_allclose(got, want, atol=2e-5)
