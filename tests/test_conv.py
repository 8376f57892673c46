"""``PatchConv`` is ``nn.Conv`` (VALID, NHWC) with the same parameters, computed as a matmul."""

import flax.linen as nn
import jax
import numpy as np
import pytest

from plasticine_jax.networks.conv import PatchConv
from plasticine_jax.networks.spec import CONV_LAYERS


@pytest.mark.parametrize("torso", ["minatar_cnn", "atari_cnn"])
def test_patch_conv_equals_flax_conv_on_the_torsos_layers(torso):
    size, channels = (10, 4) if torso == "minatar_cnn" else (84, 4)
    x = jax.random.normal(jax.random.PRNGKey(0), (3, size, size, channels))
    for features, k, stride in CONV_LAYERS[torso]:
        ref = nn.Conv(features, (k, k), strides=(stride, stride), padding="VALID")
        ours = PatchConv(features, k, stride)
        params = ref.init(jax.random.PRNGKey(1), x)
        # The same parameter tree: methods that edit conv kernels see no difference.
        ours_params = ours.init(jax.random.PRNGKey(1), x)
        assert jax.tree.map(np.shape, ours_params) == jax.tree.map(np.shape, params)
        # Non-zero bias, so a misplaced bias would show.
        params = jax.tree.map(lambda a: a + 0.1, params)
        y_ref, y = ref.apply(params, x), ours.apply(params, x)
        assert y.shape == y_ref.shape
        np.testing.assert_allclose(y, y_ref, rtol=1e-4, atol=1e-4)
        # Gradients with respect to the kernel agree too.
        def sq_loss(p, module, inputs):
            return (module.apply(p, inputs) ** 2).mean()

        g_ref = jax.grad(sq_loss)(params, ref, x)
        g = jax.grad(sq_loss)(params, ours, x)
        np.testing.assert_allclose(g["params"]["kernel"], g_ref["params"]["kernel"], rtol=1e-3,
                                   atol=1e-5)
        x = nn.relu(y_ref)
