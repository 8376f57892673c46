"""``envs.gymnax_import``: gymnax without its plotting libraries until they are used.

Each case runs in a fresh interpreter, since what it checks is what a process has imported.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

DEFERRED = textwrap.dedent(
    """
    import json, sys, types
    from plasticine_jax.envs.gymnax_env import GymnaxEnv
    env = GymnaxEnv("CartPole-v1", 2)  # imports gymnax, every env module with it
    out = {"loaded_before": sorted(m for m in ("seaborn.relational", "pandas", "scipy.stats",
                                                "matplotlib.backend_bases") if m in sys.modules)}
    import gymnax.environments.misc.pong as pong
    import gymnax.environments.bsuite.catch as catch
    palette = pong.sns.color_palette("Set2", 3)  # first use: the real seaborn is imported
    import seaborn
    out["seaborn_real"] = type(sys.modules["seaborn"]) is types.ModuleType
    out["same_palette"] = [list(c) for c in palette] == [list(c) for c in
                                                         seaborn.color_palette("Set2", 3)]
    out["pyplot_forwards"] = catch.plt.subplots is sys.modules["matplotlib.pyplot"].subplots
    import matplotlib.pyplot as plt
    out["pyplot_real"] = (type(plt) is types.ModuleType
                          and plt.figure.__module__ == "matplotlib.pyplot")
    print(json.dumps(out))
    """
)

ALREADY = textwrap.dedent(
    """
    import json, sys, types
    import seaborn
    from plasticine_jax.envs.gymnax_import import import_gymnax
    import_gymnax()
    print(json.dumps({"untouched": sys.modules["seaborn"] is seaborn,
                      "pyplot_real": type(sys.modules["matplotlib.pyplot"]) is types.ModuleType}))
    """
)


def _run(code: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_gymnax_env_does_not_import_plotting_libraries_until_used():
    out = _run(DEFERRED)
    assert out["loaded_before"] == []
    assert out["seaborn_real"] and out["same_palette"]
    assert out["pyplot_forwards"] and out["pyplot_real"]


def test_modules_already_imported_are_left_alone():
    out = _run(ALREADY)
    assert out == {"untouched": True, "pyplot_real": True}
