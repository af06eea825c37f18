"""The check fixtures move what they are handed to the test's device and back: tensors, modules,
and for a callable model the modules it reaches and the tensors it closes over. Tested on the
CPU by binding to the "meta" device (every move is visible there, and nothing computes), and
on CUDA under --nn-gpu."""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

from pytest_nnrecipe._binding import bind

NET = nn.Linear(3, 3)  # a global module a lambda reads
BIAS = torch.ones(3)  # a global tensor a lambda reads


def where_things_are(model, x, *modules_and_tensors):
    """What the bound function sees: the device of each module and tensor it is handed."""
    return [
        (t.weight if isinstance(t, nn.Module) else t).device.type for t in (x, *modules_and_tensors)
    ]


def storage(module: nn.Module) -> list[int]:
    return [t.untyped_storage().data_ptr() for t in (*module.parameters(), *module.buffers())]


def test_modules_move_in_place_and_get_their_own_tensors_back():
    net = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))
    net[0].weight.grad = torch.full((3, 3), 2.0)
    before = storage(net)
    seen = bind(lambda m, x: where_things_are(m, x, m[0], m[1].running_mean), "meta", 0)(
        net, torch.ones(2, 3)
    )
    assert seen == ["meta", "meta", "meta"]
    assert storage(net) == before  # the very same tensors, not copies moved back
    assert net[0].weight.grad.device.type == "cpu" and bool((net[0].weight.grad == 2).all())


def test_an_rnn_moved_and_back_runs_on_its_own_weights():
    rnn = nn.LSTM(3, 3, batch_first=True)
    bind(lambda model, x: None, "meta", 0)(lambda x: rnn(x)[0], torch.ones(2, 4, 3))
    assert all(w.device.type == "cpu" for w in rnn._flat_weights)
    assert rnn(torch.ones(2, 4, 3))[0].shape == (2, 4, 3)


def test_the_modules_a_callable_reaches_move_and_come_back():
    inner, bound_net, part_net, attr_net = (nn.Linear(3, 3) for _ in range(4))

    class Holder:
        def __init__(self) -> None:
            self.net = attr_net

        def __call__(self, x):
            return self.net(x)

    callables = {
        "closure cell": lambda x: inner(x),
        "bound method": bound_net.forward,
        "functools.partial": functools.partial(lambda x, net: net(x), net=part_net),
        "attribute": Holder(),
        "global": lambda x: NET(x),
    }
    nets = [inner, bound_net, part_net, attr_net, NET]
    before = [storage(n) for n in nets]

    def probe(model, x):
        return where_things_are(model, x, *nets)

    for name, model in callables.items():
        seen = bind(probe, "meta", 0)(model, torch.ones(2, 3))
        index = list(callables).index(name)
        assert seen[0] == "meta" and seen[1 + index] == "meta", name
    assert [storage(n) for n in nets] == before


def test_tensors_a_callable_closes_over_move_in_a_copy_of_it():
    mask, ones = torch.ones(3), torch.ones(3)

    def model(x, scale=ones):
        return x * mask * scale

    partial = functools.partial(lambda x, m: x * m, m=torch.ones(3))
    seen = {}

    def probe(fn, x):
        seen["fn"] = fn
        if isinstance(fn, functools.partial):
            return (fn.keywords["m"].device.type,)
        return fn.__closure__[0].cell_contents.device.type, fn.__defaults__[0].device.type

    assert bind(probe, "meta", 0)(model, torch.ones(2, 3)) == ("meta", "meta")
    assert seen["fn"] is not model and model.__closure__[0].cell_contents is mask
    assert mask.device.type == "cpu" and model.__defaults__[0].device.type == "cpu"
    assert bind(probe, "meta", 0)(partial, torch.ones(2, 3)) == ("meta",)
    assert partial.keywords["m"].device.type == "cpu"


def test_a_module_that_cannot_move_is_named():
    ghost = nn.Linear(3, 3).to("meta")  # no data to move to the CPU

    with pytest.raises(ValueError, match=r"closure variable 'ghost' of <lambda>.* Linear on meta"):
        bind(lambda model, x: model(x), "cpu", 0)(lambda x: ghost(x), torch.ones(2, 3))


def test_a_tensor_left_behind_is_named_when_the_call_fails_on_mixed_devices():
    def run(model, x):
        return model(x)

    with pytest.raises(ValueError, match=r"(?s)global 'BIAS' read by <lambda> \(a tensor of"):
        bind(run, "meta", 0)(lambda x: x + BIAS, torch.ones(2, 3))
    with pytest.raises(RuntimeError, match=r"boom"):  # other errors pass through untouched

        def boom(model, x):
            raise RuntimeError("boom on some device")

        bind(boom, "cpu", 0)(lambda x: x + BIAS, torch.ones(2, 3))


# --- on CUDA (scripts/gpu-check.sh runs these with --nn-gpu) -------------------------------


@pytest.mark.nn_gpu
def test_a_callable_model_runs_on_the_gpu_with_the_check_fixtures(
    assert_no_batch_mixing, assert_causal, nn_device
):
    net = nn.GRU(4, 4, batch_first=True)
    mask = torch.ones(4)

    def model(x):
        return net(x * mask)[0]

    assert_no_batch_mixing(model, torch.randn(3, 5, 4))
    assert_causal(functools.partial(lambda x, m: m(x)[0], m=net), torch.randn(3, 5, 4))
    assert net.weight_ih_l0.device.type == "cpu" and mask.device.type == "cpu"
