"""Training checks on the example models: steps to target, and cost in forward+backwards.

    python benchmarks/bench_training.py [seeds]      (default 20 seeds)

For every check and example model (``assert_deterministic``: two forwards and two runs of 3
steps), one run prints the updates it made and its wall time
divided by the time of one forward+backward (+ Adam step) of the same model on the same batch,
measured in the same process. Then every correct setup and every bug of the examples is run
over ``seeds`` seeds: the correct ones must pass (overfit within 200 steps), the bugs must be
caught — the counts are printed. Then ``assert_init_loss`` on losses written as training code
writes them (a ``def``, a lambda, the flattening language-model loss, a focal loss with no
closed form), correct inits and wrong ones; and, over 40 seeds, how often a final layer x10
passes at each batch size (the "blunt" small batches).
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

from models_training import (
    Classifier,
    Regressor,
    TwoBranch,
    binary_batch,
    clamped_mse,
    classification_batch,
    init_bias_log_odds,
    init_bias_log_prior,
    init_bias_mean,
    regression_batch,
    with_outliers,
)

from pytest_nnrecipe import (
    assert_beats_input_independent_baseline,
    assert_can_overfit,
    assert_deterministic,
    assert_init_loss,
    assert_loss_decreases,
    assert_lr_schedule,
    assert_params_update,
)
from pytest_nnrecipe._context import RunContext, activate


def one_step_seconds(model, x, y, loss_fn, reps: int = 50) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def timed(fn):
    t = time.perf_counter()
    try:
        result, ok = fn(), True
    except AssertionError:
        result, ok = None, False
    return result, ok, time.perf_counter() - t


def setups():
    cx, cy = classification_batch()
    rx, ry = regression_batch()
    oy = with_outliers(ry)
    return [
        ("classifier", Classifier, cx, cy, nn.CrossEntropyLoss()),
        ("classifier, dropout 0.1", lambda: Classifier(dropout=0.1), cx, cy, nn.CrossEntropyLoss()),
        ("regressor", Regressor, rx, ry, nn.MSELoss()),
        ("regressor, outliers", Regressor, rx, oy, nn.MSELoss()),
    ]


def checks_for(make, x, y, loss):
    """(name, call, steps of a passing result) for every model check on one setup."""
    return [
        ("init_loss", lambda: assert_init_loss(make(), x, y, loss, rtol=10), lambda r: 0),
        ("can_overfit", lambda: assert_can_overfit(make(), x, y, loss), lambda r: r.steps),
        ("loss_decreases", lambda: assert_loss_decreases(make(), x, y, loss), lambda r: 20),
        (
            "beats_input_independent_baseline",
            lambda: assert_beats_input_independent_baseline(make(), x, y, loss),
            lambda r: 200,
        ),
        ("params_update", lambda: assert_params_update(make(), x, y, loss), lambda r: 1),
        ("deterministic", lambda: assert_deterministic(make(), x, y, loss), lambda r: r.steps),
    ]


def cost_table() -> None:
    print(f"{'model':<26}{'check':<34}{'verdict':<8}{'steps':>6}{'ms':>9}{'x fwd+bwd':>11}")
    for name, make, x, y, loss in setups():
        unit = one_step_seconds(make(), x, y, loss)
        checks = checks_for(make, x, y, loss)
        for check, call, steps in checks:
            result, ok, seconds = timed(call)
            shown = steps(result) if ok else "-"
            print(
                f"{name:<26}{check:<34}{'pass' if ok else 'FAIL':<8}{shown:>6}"
                f"{seconds * 1e3:>9.1f}{seconds / unit:>11.1f}"
            )
        print(f"{'':<26}(one forward+backward+step: {unit * 1e3:.2f} ms)")
    x, y = classification_batch()
    unit = one_step_seconds(TwoBranch(), x, y, nn.CrossEntropyLoss())
    _, ok, seconds = timed(lambda: assert_params_update(TwoBranch(), x, y, nn.CrossEntropyLoss()))
    print(
        f"{'two-branch':<26}{'params_update':<34}{'pass' if ok else 'FAIL':<8}{1:>6}"
        f"{seconds * 1e3:>9.1f}{seconds / unit:>11.1f}"
    )
    for name, loss in (("classifier, focal loss", focal), ("classifier, def ce", None)):
        fn = loss or (lambda o, t: F.cross_entropy(o, t))
        unit = one_step_seconds(Classifier(), x, y, fn)
        _, ok, seconds = timed(lambda: assert_init_loss(Classifier(), x, y, fn, rtol=10))  # noqa: B023
        print(
            f"{name:<26}{'init_loss':<34}{'pass' if ok else 'FAIL':<8}{0:>6}"
            f"{seconds * 1e3:>9.1f}{seconds / unit:>11.1f}"
        )
    ids, nxt = torch.randint(0, 32, (8, 16)), torch.randint(0, 32, (8, 16))
    unit = one_step_seconds(TokenModel(), ids, nxt, lm_loss)
    _, ok, seconds = timed(lambda: assert_init_loss(TokenModel(), ids, nxt, lm_loss))
    print(
        f"{'token model, lm reshape':<26}{'init_loss':<34}{'pass' if ok else 'FAIL':<8}{0:>6}"
        f"{seconds * 1e3:>9.1f}{seconds / unit:>11.1f}"
    )
    smooth = lambda o, t: F.cross_entropy(o.reshape(-1, 32), t.reshape(-1), label_smoothing=0.1)  # noqa: E731
    _, ok, seconds = timed(lambda: assert_init_loss(TokenModel(), ids, nxt, smooth))
    print(
        f"{'token model, smoothed lm':<26}{'init_loss':<34}{'pass' if ok else 'FAIL':<8}{0:>6}"
        f"{seconds * 1e3:>9.1f}{seconds / unit:>11.1f}"
    )
    opt = torch.optim.SGD(Classifier().parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=1000)
    _, ok, seconds = timed(lambda: assert_lr_schedule(opt, sched, 1000))
    print(
        f"{'cosine, 1000 steps':<26}{'lr_schedule':<34}{'pass' if ok else 'FAIL':<8}"
        f"{1000:>6}{seconds * 1e3:>9.1f}"
    )


def init_setups():
    """(name, is_bug, model, inputs, targets, loss) for the assert_init_loss examples."""
    x, y = classification_batch(n=64)
    scaled = Classifier()
    with torch.no_grad():
        scaled.head.weight.mul_(20)
    three = torch.tensor([0] * 80 + [1] * 15 + [2] * 5)
    zero3, prior3 = Classifier(n_classes=3), Classifier(n_classes=3)
    init_bias_log_prior(prior3.head, three, 3)
    bx, by = binary_batch()
    zero_b, odds_b = Classifier(n_classes=1), Classifier(n_classes=1)
    init_bias_log_odds(odds_b.head, by)
    rx, ry = regression_batch(n=64, mean=50.0)
    zero_r, mean_r = Regressor(), Regressor()
    init_bias_mean(mean_r.head, ry)
    with torch.no_grad():
        for m in (zero3, zero_b, zero_r):
            m.head.bias.zero_()
    x3 = torch.randn(100, 8)
    ce, bce, mse = nn.CrossEntropyLoss(), nn.BCEWithLogitsLoss(), nn.MSELoss()
    return [
        ("default init, 4 classes", False, Classifier(), x, y, ce),
        ("final weights x20", True, scaled, x, y, ce),
        ("3 classes 80/15/5, zero bias", True, zero3, x3, three, ce),
        ("3 classes, bias = log prior", False, prior3, x3, three, ce),
        ("binary 10%, zero bias", True, zero_b, bx, by, bce),
        ("binary, bias = log odds", False, odds_b, bx, by, bce),
        ("targets ~50, zero bias", True, zero_r, rx, ry, mse),
        ("targets ~50, bias = mean", False, mean_r, rx, ry, mse),
    ]


def focal(out, t):
    """A loss with no closed form (focal, gamma=2): its optimum is found numerically."""
    logp = out.log_softmax(1).gather(1, t[:, None])[:, 0]
    return (-((1 - logp.exp()) ** 2) * logp).mean()


def lm_loss(logits, y):
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


class TokenModel(nn.Module):
    def __init__(self, vocab: int = 32, scale: float = 1.0) -> None:
        super().__init__()
        self.embed, self.head = nn.Embedding(vocab, 16), nn.Linear(16, vocab)
        with torch.no_grad():
            self.head.weight.mul_(scale)

    def forward(self, ids):
        return self.head(torch.tanh(self.embed(ids)))


def custom_loss_setups():
    """(name, is_bug, model, inputs, targets, loss) with losses written as functions."""
    x = torch.randn(64, 8)
    y4, y3 = torch.arange(64) % 4, torch.arange(64) % 3
    ids, nxt = torch.randint(0, 32, (8, 16)), torch.randint(0, 32, (8, 16))
    rare = (torch.arange(64) % 8 == 0).float()[:, None]
    y50 = 50 + torch.randn(64, 1)

    def big(n):
        m = Classifier(n_classes=n)
        with torch.no_grad():
            m.head.weight.mul_(20)
        return m

    zero_b, odds_b, mean50 = Classifier(n_classes=1), Classifier(n_classes=1), Regressor()
    with torch.no_grad():
        zero_b.head.bias.zero_()
        odds_b.head.bias.fill_(math.log(1 / 7))
        mean50.head.bias.fill_(50.0)

    def ce(o, t):
        return F.cross_entropy(o, t)

    bce = lambda o, t: F.binary_cross_entropy_with_logits(o, t)  # noqa: E731
    mse = lambda o, t: ((o - t) ** 2).mean()  # noqa: E731
    return [
        ("def ce, default", False, Classifier(), x, y4, ce),
        ("def ce, x20", True, big(4), x, y4, ce),
        ("lm reshape, default", False, TokenModel(), ids, nxt, lm_loss),
        ("lm reshape, x20", True, TokenModel(scale=20), ids, nxt, lm_loss),
        ("lambda bce, log-odds bias", False, odds_b, x, rare, bce),
        ("lambda bce, zero bias", True, zero_b, x, rare, bce),
        ("lambda mse, bias 50", False, mean50, x, y50, mse),
        ("lambda mse, zero bias", True, Regressor(), x, y50, mse),
        ("focal, default", False, Classifier(n_classes=3), x, y3, focal),
        ("focal, x20", True, big(3), x, y3, focal),
    ]


def blunt_table(seeds: int = 40) -> None:
    """How often a final layer x10 passes assert_init_loss, per batch size (4 classes)."""
    print(
        f"\nfinal layer x10 passing assert_init_loss over {seeds} seeds (random labels, 4 classes):"
    )
    for batch in (8, 16, 24, 32, 64):
        bug = correct = blunt = 0
        sharp: set[int] = set()
        for seed in range(seeds):
            torch.manual_seed(seed)
            x, y = torch.randn(batch, 10), torch.randint(0, 4, (batch,))
            model = nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 4))
            result, ok, _ = timed(lambda: assert_init_loss(model, x, y, nn.CrossEntropyLoss()))  # noqa: B023
            correct += ok
            if ok and result.blunt:
                blunt += 1
                sharp.add(result.sharp_batch_size)
            with torch.no_grad():
                model[2].weight.mul_(10)
            bug += timed(lambda: assert_init_loss(model, x, y, nn.CrossEntropyLoss()))[1]  # noqa: B023
        shown = f", sharp from {min(sharp)}-{max(sharp)}" if sharp else ""
        print(
            f"  batch {batch:>3}: bug passes {bug}/{seeds}, correct passes {correct}/{seeds}, "
            f"blunt {blunt}/{seeds}{shown}"
        )


def sweep(seeds: int) -> None:
    cx_cy = classification_batch
    bugs = {
        "double softmax (overfit)": lambda x, y: assert_can_overfit(
            Classifier(softmax=True), x, y, nn.CrossEntropyLoss()
        ),
        "dropout 0.9 (overfit)": lambda x, y: assert_can_overfit(
            Classifier(dropout=0.9), x, y, nn.CrossEntropyLoss()
        ),
        "input x 0 (baseline)": lambda x, y: assert_beats_input_independent_baseline(
            Classifier(input_scale=0.0), x, y, nn.CrossEntropyLoss()
        ),
        "detached + unused (params)": lambda x, y: assert_params_update(
            TwoBranch(detach=True, unused=True), x, y, nn.CrossEntropyLoss()
        ),
    }
    regression_bugs = {
        "ReLU head (overfit)": lambda x, y: assert_can_overfit(
            Regressor(relu_head=True), x, y, nn.MSELoss()
        ),
        "clamped loss (overfit)": lambda x, y: assert_can_overfit(
            Regressor(), x, with_outliers(y), clamped_mse
        ),
    }
    caught: dict[str, int] = dict.fromkeys([*bugs, *regression_bugs], 0)
    init_right: dict[str, int] = {}
    custom_right: dict[str, int] = {}
    steps: dict[str, list[int]] = {}
    passes: dict[str, int] = {}
    for seed in range(seeds):
        with activate(RunContext(nodeid=f"bench-{seed}", seed=seed)):
            torch.manual_seed(seed)
            for name, make, x, y, loss in setups():
                result, ok, _ = timed(lambda: assert_can_overfit(make(), x, y, loss))  # noqa: B023
                passes[name] = passes.get(name, 0) + (ok and result.steps <= 200)
                if ok:
                    steps.setdefault(name, []).append(result.steps)
            cx, cy = cx_cy()
            for name, call in bugs.items():
                caught[name] += not timed(lambda: call(cx, cy))[1]  # noqa: B023
            rx, ry = regression_batch()
            for name, call in regression_bugs.items():
                caught[name] += not timed(lambda: call(rx, ry))[1]  # noqa: B023
            for name, bug, model, x, y, loss in init_setups():
                ok = timed(lambda: assert_init_loss(model, x, y, loss))[1]  # noqa: B023
                init_right[name] = init_right.get(name, 0) + (ok != bug)
            for name, bug, model, x, y, loss in custom_loss_setups():
                ok = timed(lambda: assert_init_loss(model, x, y, loss))[1]  # noqa: B023
                custom_right[name] = custom_right.get(name, 0) + (ok != bug)
    print(f"\ncorrect setups over {seeds} seeds (assert_can_overfit, default Adam lr=1e-2):")
    for name, s in steps.items():
        print(
            f"  {name:<26} passed {passes[name]}/{seeds}, steps min {min(s)} "
            f"median {statistics.median(s):g} max {max(s)}"
        )
    print(f"assert_init_loss verdicts right (bug caught / correct init passed) over {seeds} seeds:")
    for name, n in init_right.items():
        print(f"  {name:<32} {n}/{seeds}")
    print(f"assert_init_loss on custom losses, verdicts right over {seeds} seeds:")
    for name, n in custom_right.items():
        print(f"  {name:<32} {n}/{seeds}")
    print(f"bugs caught over {seeds} seeds:")
    for name, n in caught.items():
        print(f"  {name:<28} {n}/{seeds}")


if __name__ == "__main__":
    n_seeds = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    with activate(RunContext(nodeid="bench", seed=0)):
        torch.manual_seed(0)
        cost_table()
    t0 = time.perf_counter()
    sweep(n_seeds)
    blunt_table()
    print(f"sweep took {time.perf_counter() - t0:.1f}s")
