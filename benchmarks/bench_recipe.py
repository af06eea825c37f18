"""The whole recipe (``check_recipe``) on each example model: its time, and its ratio to one
forward+backward (+ Adam step) of the same model on the same batch, measured in one run.

    python benchmarks/bench_recipe.py [--threads N]     (default: 1 thread, stable on a busy box)

Models: the factories of ``examples/recipe_models.py`` with their declared specs (an MLP, a
CNN, a 2-layer transformer LM with an LR schedule, a tiny GPT-2) and a tiny Llama. Each recipe
runs once to warm up (imports, first-call costs), then is timed; the per-step times of the
timed run follow.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

import recipe_models

from pytest_nnrecipe import check_recipe, specs
from pytest_nnrecipe._outputs import select


def one_step_seconds(make_model: Any, spec: Any, reps: int = 30) -> float:
    """Median time of one forward, loss, backward and Adam step."""
    model = make_model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    pick = spec.loss_output or spec.output
    times = []
    for _ in range(reps + 3):
        t = time.perf_counter()
        out = model(spec.inputs)
        out = pick(out) if callable(pick) else select(out, pick)
        loss = spec.loss_fn(out, spec.targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t)
    return statistics.median(times[3:])


def tiny_llama() -> torch.nn.Module:
    import transformers

    transformers.logging.set_verbosity_error()
    config = transformers.LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=16,
    )
    return transformers.LlamaForCausalLM(config)


def models() -> list[tuple[str, Any, Any]]:
    out = []
    for name in ("make_mlp", "make_cnn", "make_lm", "make_gpt2"):
        factory = getattr(recipe_models, name)
        spec = factory.nnrecipe_spec
        out.append((name, factory, spec() if callable(spec) else spec))
    out.append(("tiny_llama", tiny_llama, specs.language_model(vocab_size=64, seq_len=12)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s)")
    print(
        f"{'model':<12}{'fwd+bwd ms':>11}{'recipe s':>10}{'x fwd+bwd':>11}  verdicts / per-step s"
    )
    for name, factory, spec in models():
        unit = one_step_seconds(factory, spec)
        check_recipe(factory, **spec)  # warm-up
        start = time.perf_counter()
        result = check_recipe(factory, **spec)
        seconds = time.perf_counter() - start
        steps = " ".join(
            f"{s.name}={s.seconds:.2f}" for s in result.steps if s.verdict != "skipped"
        )
        print(
            f"{name:<12}{unit * 1e3:>11.2f}{seconds:>10.2f}{seconds / unit:>11.0f}  "
            f"{result.summary.split(' on ')[0]}; {steps}"
        )


if __name__ == "__main__":
    main()
