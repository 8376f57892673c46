"""Weight initialisers that are safe under ``jit(vmap(...))``.

flax's ``orthogonal`` calls LAPACK QR. Batched QR under ``jit(vmap)`` has deadlocked jaxlib
0.10.x on CPU, and seeds are always vmapped here, so we orthogonalise with modified
Gram-Schmidt (matmuls and a ``fori_loop`` only). Two passes ("twice is enough",
Giraud et al. 2005) give orthogonality to float32 precision. The Gram-Schmidt Q of a
Gaussian matrix has R with a positive diagonal, so Q is Haar-distributed, as QR with the
usual sign fix is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp


def _gram_schmidt_columns(a: jax.Array) -> jax.Array:
    """Orthonormalises the columns of ``a`` ``[m, n]`` (m >= n), two MGS passes."""
    n = a.shape[1]

    def one_pass(q):
        def body(j, q):
            v = q[:, j]
            # Project out the already-orthonormal columns 0..j-1 (masked, static shapes).
            mask = (jnp.arange(n) < j).astype(q.dtype)
            coeffs = (q.T @ v) * mask
            v = v - q @ coeffs
            v = v / jnp.maximum(jnp.linalg.norm(v), 1e-12)
            return q.at[:, j].set(v)

        return jax.lax.fori_loop(0, n, body, q)

    return one_pass(one_pass(a))


def orthogonal(scale: float = 1.0):
    """Orthogonal initialiser (Saxe et al. 2014) without LAPACK.

    The kernel is reshaped to ``[prod(shape[:-1]), shape[-1]]``; rows or columns (whichever
    are fewer) are orthonormal, then multiplied by ``scale``.
    """

    def init(key: jax.Array, shape: Sequence[int], dtype=jnp.float32) -> jax.Array:
        rows = math.prod(shape[:-1])
        cols = shape[-1]
        tall = rows >= cols
        m, n = (rows, cols) if tall else (cols, rows)
        a = jax.random.normal(key, (m, n), jnp.float32)
        q = _gram_schmidt_columns(a)
        w = q if tall else q.T
        return (scale * w).reshape(shape).astype(dtype)

    return init
