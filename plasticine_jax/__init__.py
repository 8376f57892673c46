"""plasticine-jax: plasticity loss in deep RL, compiled over seeds and methods."""

__version__ = "0.1.0"
