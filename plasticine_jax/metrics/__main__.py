"""``python -m plasticine_jax.metrics``: print the available metrics."""

from plasticine_jax.metrics import METRICS

if __name__ == "__main__":
    width = max(map(len, METRICS))
    for name, description in METRICS.items():
        print(f"{name:<{width}}  {description}")
