"""The pre-training checks' cost, as a ratio to one forward+backward of the same model on the
same batch (measured in the same process):

    python benchmarks/bench_pre_training.py

``assert_inputs_used`` (float inputs by gradient, integer inputs by perturbation; with
``feature_dim=`` per column), ``assert_optimizer_covers`` (no forward at all) and the loss-graph
check every training check runs on its first forward (the walk of the loss's autograd graph;
timed on a graph built once: the forward is the check's own). Each figure is the median of ``REPS`` calls.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

from models_pre_training import SentenceClassifier, padded_batch
from models_training import Classifier, classification_batch

from pytest_nnrecipe import assert_inputs_used, assert_optimizer_covers
from pytest_nnrecipe._training import _fit

REPS = 20


def median_seconds(fn) -> float:
    fn()  # warm up
    times = []
    for _ in range(REPS):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def forward_backward(model, call, loss_of):
    def run() -> None:
        model.zero_grad(set_to_none=True)
        loss_of(call(model)).backward()

    return run


def graph_walk(model, inputs, call, loss_of, targets):
    problem = _fit.prepare("bench", model, inputs, targets, lambda o, t: loss_of(o))
    params = [p for p in model.parameters() if p.requires_grad]
    out = call(model)
    loss = loss_of(out)  # one graph, walked again on each call

    def run() -> None:
        _fit._graph_sanity(problem, out, loss, params)

    return run


def main() -> None:
    torch.set_num_threads(1)
    x, y = classification_batch()
    mlp = Classifier()
    batch, labels = padded_batch()
    bert = SentenceClassifier()
    setups = [
        ("classifier MLP", mlp, x, lambda m: m(x), lambda o: F.cross_entropy(o, y), y),
        (
            "BERT-style classifier",
            bert,
            batch,
            lambda m: m(**batch),
            lambda o: F.cross_entropy(o, labels),
            labels,
        ),
    ]
    print(f"{'model':<24}{'what':<40}{'ms':>9}{'x fwd+bwd':>11}")
    for name, model, inputs, call, loss_of, targets in setups:
        unit = median_seconds(forward_backward(model, call, loss_of))
        forward = median_seconds(lambda: call(model))  # noqa: B023
        rows = [
            ("assert_inputs_used", lambda: assert_inputs_used(model, inputs)),  # noqa: B023
            ("assert_optimizer_covers", lambda: assert_optimizer_covers(model, opt)),  # noqa: B023
            ("loss graph walk (per training check)", None),  # on a graph built once
        ]
        opt = torch.optim.AdamW(model.parameters())
        if name == "classifier MLP":
            rows.append(
                (
                    "assert_inputs_used, feature_dim=-1",
                    lambda: assert_inputs_used(model, inputs, feature_dim=-1),  # noqa: B023
                )
            )
        for what, fn in rows:
            if what.startswith("loss graph"):
                seconds = median_seconds(graph_walk(model, inputs, call, loss_of, targets))
            else:
                seconds = median_seconds(fn)
            print(f"{name:<24}{what:<40}{seconds * 1e3:>9.2f}{seconds / unit:>11.2f}")
        print(
            f"{'':<24}(one forward+backward: {unit * 1e3:.2f} ms, forward {forward * 1e3:.2f} ms)"
        )


if __name__ == "__main__":
    main()
