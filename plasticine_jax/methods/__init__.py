"""Mitigation methods behind one contract (see ``methods.base``)."""

from plasticine_jax.methods.base import Events, Intervention, LearnerState, Method, ModelContext
from plasticine_jax.methods.registry import REGISTRY, make_method

__all__ = [
    "REGISTRY",
    "Events",
    "Intervention",
    "LearnerState",
    "Method",
    "ModelContext",
    "make_method",
]
