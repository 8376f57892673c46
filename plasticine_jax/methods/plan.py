"""Which method lists can share one compiled program.

A sweep over methods gives candidate lists, e.g. ``[[], [l2], [l2_init], [trac], [crelu],
[redo]]``. Members share a program when their programs have the same structure:

* methods whose only hooks are an optimizer wrapper and/or a loss penalty, and which declare
  ``identity_hp`` (values making them exact no-ops), are *batchable*: the group runs the union
  of them, and a member that lacks one runs it at its identity values;
* network edits are compared by their effect: members whose final ``NetworkSpec`` (base spec
  after all edits) agrees may share a program; a method that only edits the network is
  batchable (its whole effect is in the spec);
* every other method (interventions, target hooks; wrappers without identity values) is
  *structural*: the members of a group carry the same structural methods, in the same order.

The union keeps every member's own order (each member's list is a subsequence of the
group's list), because optimizer wrappers do not commute; a member that cannot be merged so
starts another group. Methods with equal names but different options (``l2_init``
squared vs unsquared) cannot share a group, since hyperparameters are keyed by name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from plasticine_jax.methods.base import Method
from plasticine_jax.methods.compose import edit_network
from plasticine_jax.networks.spec import NetworkSpec


class Group(NamedTuple):
    """Members that share one program.

    Attributes:
      methods: the group's method list (union of its members', in a compatible order).
      member_hps: per member, ``{method name: {hp: value}}`` for *every* method of the
        group: the member's own values, identity values for methods it does not have.
      members: indices of the members in the input list, aligned with ``member_hps``.
    """

    methods: tuple[Method, ...]
    member_hps: tuple[dict[str, dict[str, float]], ...]
    members: tuple[int, ...]


def is_batchable(m: Method) -> bool:
    """True when ``m`` can be switched off by its hyperparameters alone."""
    if m.intervention is not None or m.after_target_update is not None:
        return False  # no identity values are declared for these hooks
    hooks = m.optimizer is not None or m.penalty is not None
    return not hooks or m.identity_hp is not None


def _merge(union: list[Method], member: Sequence[Method]) -> list[Method] | None:
    """``union`` extended so ``member`` is a subsequence of it, or None if impossible."""
    by_name = {m.name: m for m in union}
    out = list(union)
    pos = -1
    for m in member:
        if m.name in by_name:
            if by_name[m.name].key != m.key:
                return None
            i = next(j for j, u in enumerate(out) if u.name == m.name)
            if i <= pos:
                return None
            pos = i
        else:
            out.insert(pos + 1, m)
            by_name[m.name] = m
            pos += 1
    return out


def _signature(methods: Sequence[Method], spec: NetworkSpec | None) -> tuple[Any, ...]:
    structural = tuple(m.key for m in methods if not is_batchable(m))
    final = (
        edit_network(spec, methods)
        if spec is not None
        else tuple(m.key for m in methods if m.network is not None)
    )
    return (final, structural)


def group_method_lists(
    lists: Sequence[Sequence[Method]],
    hps: Sequence[Mapping[str, Mapping[str, float]]] | None = None,
    spec: NetworkSpec | None = None,
) -> list[Group]:
    """Splits candidate method lists into compile groups (see the module docstring).

    Args:
      lists: per member, its methods in application order.
      hps: per member, ``{method name: {hp: value}}`` overrides (default: the methods' own
        defaults).
      spec: the base network; when given, network edits are compared by the final network
        they produce (so ``layer_norm`` on a LayerNorm network changes nothing), otherwise
        by which network-editing methods are present.

    Returns:
      The groups, in order of their first member.
    """
    hps = hps or [{}] * len(lists)
    groups: list[tuple[tuple[Any, ...], list[Method], list[int]]] = []
    for idx, methods in enumerate(lists):
        sig = _signature(methods, spec)
        for g_sig, union, members in groups:
            if g_sig != sig:
                continue
            merged = _merge(union, methods)
            if merged is not None:
                union[:] = merged
                members.append(idx)
                break
        else:
            merged = _merge([], methods)
            if merged is None:
                raise ValueError(
                    f"member {idx}: a method is listed twice in {[m.name for m in methods]}"
                )
            groups.append((sig, merged, [idx]))

    out = []
    for _, union, members in groups:
        member_hps = []
        for idx in members:
            own = {m.name: m for m in lists[idx]}
            values = {}
            for m in union:
                if m.name in own:
                    values[m.name] = {**m.hp, **dict(hps[idx].get(m.name, {}))}
                else:
                    values[m.name] = dict(m.identity_hp or {})
            member_hps.append({k: {h: float(v) for h, v in d.items()} for k, d in values.items()})
        out.append(Group(tuple(union), tuple(member_hps), tuple(members)))
    return out
