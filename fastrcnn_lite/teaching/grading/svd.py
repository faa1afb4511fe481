"""Grader for notebook 06's truncated SVD exercise (Fast R-CNN section 3.1).

Data-flow stage: none (teaching aid) for **heads** (the fc layers, compressed for test time). The
reference is :func:`~fastrcnn_lite.svd.svd_linear`. The learner's function:

- ``compress(linear, rank)`` with ``linear`` an ``nn.Linear`` of weight u x v (out x in) and
  ``rank`` t -> ``nn.Sequential(Linear(v, t, bias=False), Linear(t, u))``, compared by its
  layers and its outputs on fixed inputs.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ...svd import svd_linear
from .core import Case, differ, exercise, grade

__all__ = ["check_truncated_svd"]


def _factored_summary(module, linear: nn.Linear) -> dict:
    """The layers (as words) and the outputs on fixed inputs, to compare two factorisations."""
    if not isinstance(module, nn.Sequential) or not all(isinstance(m, nn.Linear) for m in module):
        kinds = (
            [type(m).__name__ for m in module]
            if isinstance(module, nn.Sequential)
            else type(module).__name__
        )
        return {"layers": f"not an nn.Sequential of nn.Linear layers: {kinds}"}
    layers = " -> ".join(
        f"Linear({m.in_features}->{m.out_features}, {'bias' if m.bias is not None else 'no bias'})"
        for m in module
    )
    x = torch.randn(5, linear.in_features, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        return {"layers": layers, "output": module(x).detach()}


def _svd_compare(got, expected) -> str | None:
    if got["layers"] != expected["layers"]:
        return f"layers {got['layers']} where {expected['layers']} was expected"
    why = differ(got["output"], expected["output"], atol=1e-4, rtol=1e-4)
    return f"outputs on 5 random inputs: {why}" if why else None


@exercise("06", points=2, task="truncated SVD of a linear layer: W ~ U_t S_t V_t^T as two layers")
def check_truncated_svd(fn: Callable, random_cases: int = 6) -> str:
    """Grade ``fn(linear, rank)`` -> ``nn.Sequential(Linear(v, t, bias=False), Linear(t, u))``.

    Notebook 06 grades its truncated SVD exercise with it.
    """
    __tracebackhide__ = True

    def run(compress):
        def wrapped(linear, rank):
            return _factored_summary(compress(linear, rank), linear)

        return wrapped

    def layer(v, u, bias=True, seed=0):
        torch.manual_seed(seed)  # nn.Linear draws its weights from the global generator
        return nn.Linear(v, u, bias=bias)

    with torch.random.fork_rng():
        cases = [
            Case(
                "full rank: the layer is reproduced",
                (layer(6, 4), 4),
                hint="At t = min(u, v) nothing is dropped: U S V^T is W itself.",
            ),
            Case(
                "rank 1",
                (layer(8, 5, seed=1), 1),
                hint="Keep the t LARGEST singular values (torch.linalg.svd sorts them in "
                "decreasing order): U[:, :t], S[:t], Vh[:t].",
            ),
            Case(
                "bias only on the second layer",
                (layer(10, 6, seed=2), 3),
                hint="The first layer S_t V_t^T has no bias (bias=False); the second, U_t, keeps the "
                "original bias.",
            ),
            Case(
                "a wide layer (v > u), rank 2",
                (layer(12, 3, seed=3), 2),
                hint="W is u x v (out x in): the first layer is t x v, the second u x t.",
            ),
            Case(
                "a layer without bias",
                (layer(7, 9, bias=False, seed=4), 3),
                hint="When the original layer has no bias, neither layer has one.",
            ),
        ]
        for seed in range(random_cases):
            v, u = (int(s) for s in torch.randint(4, 40, (2,)))
            rank = int(torch.randint(1, min(u, v) + 1, (1,)))
            cases.append(Case("a random layer", (layer(v, u, seed=10 + seed), rank)))
    return grade(
        run(fn),
        run(svd_linear),
        cases,
        name="check_truncated_svd",
        against="fastrcnn_lite.svd.svd_linear",
        compare=_svd_compare,
        covered="full rank, rank 1, bias placement, wide layers, no bias",
    )
