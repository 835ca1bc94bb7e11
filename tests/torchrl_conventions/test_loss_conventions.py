"""TorchRL's generic LossModule properties over every loss of the library (issue 27's acceptance).

The properties are those TorchRL's own test suite checks on its losses (keys and ``set_keys``
reaching the estimator, keyword-tensor calls, reductions, batch dimensions, frozen and unaliased
target parameters, losses without targets, ``state_dict``/``deepcopy`` round trips,
``reset_parameters_recursive``, ``out_keys``, prioritized weighting, ``torch.compile``, ``vmap``),
written against TorchRL's ``DQNLoss`` and ``SACLoss`` too, as controls. Where TorchRL's own loss
fails a property, the case is marked ``xfail`` with the reason.
"""
from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
import torch
from tensordict import TensorDict
from torchrl.data import Bounded, Categorical
from torchrl.modules import MLP, QValueActor
from torchrl.objectives import DQNLoss, SACLoss

from torchrl_reg.modules.critics import state_action_value_network, state_value_network
from torchrl_reg.modules.iqn import ImplicitQuantileNetwork
from torchrl_reg.modules.policies import tanh_normal_policy
from torchrl_reg.objectives import (
    AdvantageLearningLoss,
    DiscreteVIRELLoss,
    ImplicitQLoss,
    IQNLoss,
    MDACLoss,
    MIRLLoss,
    MunchausenDQNLoss,
    MunchausenIQNLoss,
    SoftQLoss,
    VIRELLoss,
)

pytestmark = pytest.mark.filterwarnings("ignore:MIRLLoss")

OBS, A, B = 3, 2, 4
BOX = Bounded(-1.0, 1.0, shape=(2,))


def q_actor() -> QValueActor:
    return QValueActor(MLP(in_features=OBS, out_features=A, num_cells=[8]), in_keys=["observation"], spec=Categorical(A))


def iqn_actor() -> QValueActor:
    net = ImplicitQuantileNetwork.mlp(OBS, A, num_cells=(8,), embedding_dim=4, num_policy_quantiles=4)
    return QValueActor(net, in_keys=["observation"], spec=Categorical(A))


IQN_SIZES = {"num_quantiles": 4, "num_target_quantiles": 4, "num_policy_quantiles": 4}

#: name -> (factory(**kwargs), batch kind, delay argument name or None)
LOSSES: dict[str, tuple[Callable, str, str | None]] = {
    "m_dqn": (lambda **kw: MunchausenDQNLoss(q_actor(), **kw), "discrete", "delay_value"),
    "al": (lambda **kw: AdvantageLearningLoss(q_actor(), **kw), "discrete", "delay_value"),
    "pal": (lambda **kw: AdvantageLearningLoss(q_actor(), persistent=True, **kw), "discrete", "delay_value"),
    "mirl": (lambda **kw: MIRLLoss(q_actor(), **kw), "discrete", "delay_value"),
    "iqn": (lambda **kw: IQNLoss(iqn_actor(), **IQN_SIZES, **kw), "discrete", "delay_value"),
    "m_iqn": (lambda **kw: MunchausenIQNLoss(iqn_actor(), **IQN_SIZES, **kw), "discrete", "delay_value"),
    "iq": (
        lambda **kw: ImplicitQLoss(tanh_normal_policy(OBS, BOX, num_cells=(8,)), state_value_network(OBS, num_cells=(8,)), **kw),
        "continuous",
        None,
    ),
    "discrete_virel": (lambda **kw: DiscreteVIRELLoss(q_actor(), **kw), "discrete", "delay_value"),
    "virel": (
        lambda **kw: VIRELLoss(
            tanh_normal_policy(OBS, BOX, num_cells=(8,)), state_action_value_network(OBS, 2, num_cells=(8,)), **kw
        ),
        "continuous",
        "delay_qvalue",
    ),
    "mdac": (
        lambda **kw: MDACLoss(
            tanh_normal_policy(OBS, BOX, num_cells=(8,)), state_action_value_network(OBS, 2, num_cells=(8,)), **kw
        ),
        "continuous",
        "delay_qvalue",
    ),
    "soft_q": (
        lambda **kw: SoftQLoss(state_action_value_network(OBS, 2, num_cells=(8,)), action_spec=BOX, num_value_particles=4, **kw),
        "continuous",
        "delay_qvalue",
    ),
    # Controls: TorchRL's own losses.
    "torchrl_dqn": (lambda **kw: DQNLoss(q_actor(), action_space="categorical", **kw), "discrete", "delay_value"),
    "torchrl_sac": (
        lambda **kw: SACLoss(
            tanh_normal_policy(OBS, BOX, num_cells=(8,)), state_action_value_network(OBS, 2, num_cells=(8,)), **kw
        ),
        "continuous",
        "delay_qvalue",
    ),
}
OURS = [name for name in LOSSES if not name.startswith("torchrl_")]
ALL = list(LOSSES)

def make(name: str, **kwargs):
    torch.manual_seed(0)
    factory = LOSSES[name][0]
    loss = factory(**kwargs)
    loss.make_value_estimator(gamma=0.9)
    return loss


def batch(name: str, shape=(B,), seed: int = 1) -> TensorDict:
    g = torch.Generator().manual_seed(seed)
    kind = LOSSES[name][1]
    if kind == "discrete":
        action = torch.randint(0, A, shape, generator=g)
    else:
        action = torch.rand(*shape, 2, generator=g) * 1.8 - 0.9
    done = torch.zeros(*shape, 1, dtype=torch.bool)
    done.view(-1)[0] = True
    return TensorDict(
        {
            "observation": torch.randn(*shape, OBS, generator=g),
            "action": action,
            ("next", "observation"): torch.randn(*shape, OBS, generator=g),
            ("next", "reward"): torch.randn(*shape, 1, generator=g),
            ("next", "done"): done,
            ("next", "terminated"): done.clone(),
        },
        list(shape),
    )


def run(loss, td, seed: int = 2):
    torch.manual_seed(seed)  # IQN fractions, sampled actions: the same draws for the two sides of a comparison
    return loss(td)


def loss_terms(out) -> list[str]:
    return sorted(key for key in out.keys() if key.startswith("loss"))


@pytest.mark.parametrize("name", ALL)
def test_out_keys_list_every_output(name):
    loss = make(name)
    assert set(run(loss, batch(name)).keys()) == set(loss.out_keys)


@pytest.mark.parametrize("name", ALL)
def test_set_keys_reach_the_estimator_and_the_batch(name):
    reference = run(make(name), batch(name))
    loss = make(name)
    loss.set_keys(reward="r2", terminated="term2", done="done2")
    estimator_keys = loss.value_estimator.tensor_keys
    assert (estimator_keys.reward, estimator_keys.terminated, estimator_keys.done) == ("r2", "term2", "done2")
    assert ("next", "r2") in loss.in_keys
    td = batch(name)
    td.rename_key_(("next", "reward"), ("next", "r2"))
    td.rename_key_(("next", "terminated"), ("next", "term2"))
    td.rename_key_(("next", "done"), ("next", "done2"))
    renamed = run(loss, td)
    for key in loss_terms(reference):
        torch.testing.assert_close(renamed[key], reference[key])


@pytest.mark.parametrize("name", ALL)
def test_keyword_tensor_call(name):
    loss = make(name)
    td = batch(name)
    kwargs = {"_".join(key if isinstance(key, tuple) else (key,)): td.get(key) for key in loss.in_keys}
    torch.manual_seed(2)
    outputs = loss(**kwargs)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    reference = run(make(name), td)
    by_key = dict(zip(loss.out_keys, outputs))
    for key in loss_terms(reference):
        torch.testing.assert_close(by_key[key], reference[key])


@pytest.mark.parametrize("name", ALL)
def test_reductions(name):
    td = batch(name)
    per_sample = run(make(name, reduction="none"), td.clone())
    mean = run(make(name, reduction="mean"), td.clone())
    total = run(make(name, reduction="sum"), td.clone())
    for key in loss_terms(mean):
        assert per_sample[key].shape[: td.batch_dims] == td.batch_size or per_sample[key].ndim == 0
        torch.testing.assert_close(mean[key], per_sample[key].mean())
        torch.testing.assert_close(total[key], per_sample[key].sum())


@pytest.mark.parametrize("name", OURS)
def test_diagnostics_are_per_sample_under_reduction_none(name):
    td = batch(name)
    out = run(make(name, reduction="none"), td)
    for key in out.keys():
        assert out[key].shape[: td.batch_dims] == td.batch_size, key
    reduced = run(make(name), td)
    for key in reduced.keys():
        assert reduced[key].ndim == 0 and not reduced[key].requires_grad or key.startswith("loss"), key


@pytest.mark.parametrize("name", ALL)
def test_two_batch_dimensions(name):
    td = batch(name, shape=(2, B))
    out = run(make(name, reduction="none"), td.clone())
    flat = run(make(name, reduction="none"), td.reshape(-1))
    for key in loss_terms(out):
        if out[key].ndim:  # per-sample terms
            assert out[key].shape[:2] == td.batch_size
    assert torch.isfinite(run(make(name), td)[loss_terms(out)[0]]).all()
    assert set(flat.keys()) == set(out.keys())


@pytest.mark.parametrize("name", ALL)
def test_targets_are_frozen_and_not_aliased(name):
    loss = make(name)
    targets = [key for key in loss._modules if key.startswith("target_")]
    assert targets
    for target_name in targets:
        online = getattr(loss, target_name[len("target_"):])
        target = getattr(loss, target_name)
        for key, value in target.items(True, True):
            assert not value.requires_grad
            if key in online.keys(True, True):
                assert value.data_ptr() != online.get(key).data_ptr()
    out = run(loss, batch(name))
    sum(out[key] for key in loss_terms(out)).backward()
    for target_name in targets:
        assert all(value.grad is None for value in getattr(loss, target_name).values(True, True))
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in loss.parameters())


@pytest.mark.parametrize("name", [n for n in ALL if LOSSES[n][2] is not None])
def test_parameters_without_targets(name):
    loss = make(name, **{LOSSES[name][2]: False})
    out = run(loss, batch(name))
    assert torch.isfinite(out[loss_terms(out)[0]])


@pytest.mark.parametrize("name", ALL)
def test_state_dict_and_deepcopy_round_trips(name):
    loss = make(name)
    td = batch(name)
    reference = run(loss, td.clone())
    torch.manual_seed(5)
    other = LOSSES[name][0]()
    other.make_value_estimator(gamma=0.9)
    other.load_state_dict(loss.state_dict())
    copied = copy.deepcopy(loss)
    for candidate in (other, copied):
        out = run(candidate, td.clone())
        for key in loss_terms(reference):
            torch.testing.assert_close(out[key], reference[key])
    with torch.no_grad():
        next(copied.parameters()).add_(1.0)
    assert not torch.equal(next(copied.parameters()), next(loss.parameters()))


@pytest.mark.parametrize("name", ALL)
def test_reset_parameters_recursive(name):
    loss = make(name)
    before = [p.detach().clone() for p in loss.parameters()]
    loss.reset_parameters_recursive()
    assert any(not torch.equal(a, p) for a, p in zip(before, loss.parameters()))


@pytest.mark.parametrize("name", ALL)
def test_prioritized_weighting(name):
    td = batch(name)
    weights = torch.tensor([0.5, 1.0, 2.0, 0.25])
    per_sample = run(make(name, reduction="none"), td.clone())
    weighted_td = td.clone()
    weighted_td["priority_weight"] = weights
    weighted = run(make(name), weighted_td)
    unweighted = run(make(name, use_prioritized_weights=False), weighted_td.clone())
    key = loss_terms(weighted)[0]
    # TorchRL's weighted mean: sum(w * l) / sum(w).
    torch.testing.assert_close(weighted[key], (weights * per_sample[key]).sum() / weights.sum())
    torch.testing.assert_close(unweighted[key], per_sample[key].mean())


@pytest.mark.parametrize("name", ALL)
def test_priority_is_written_in_place(name):
    loss = make(name)
    td = batch(name)
    run(loss, td)
    priority = td.get(loss.tensor_keys.priority, None)
    assert priority is not None and priority.shape[: td.batch_dims] == td.batch_size


@pytest.mark.slow
@pytest.mark.parametrize("name", ["m_dqn", "iq"])
def test_torch_compile_equals_eager(name):
    loss = make(name)
    td = batch(name)
    eager = run(loss, td.clone())
    compiled = torch.compile(loss)
    out = run(compiled, td.clone())
    for key in loss_terms(eager):
        torch.testing.assert_close(out[key], eager[key])


# VIRELLoss returns two loss terms and may update its temperature buffer in forward
# (fusable_update=False): it has no pure single-loss loss_and_outputs to vmap. MDACLoss draws its
# reparametrized actions in place, as TorchRL's SACLoss, which vmap's per-batch randomness refuses.
@pytest.mark.parametrize(
    "name",
    [
        *[n for n in OURS if n not in ("virel", "mdac")],
        pytest.param(
            "mdac",
            marks=pytest.mark.xfail(
                reason="in-place reparametrized sampling (TanhNormal.rsample), as TorchRL's SACLoss", strict=True
            ),
        ),
    ],
)
def test_vmap_over_batches_of_the_pure_loss(name):
    loss = make(name)
    stacked = torch.stack([batch(name, seed=s) for s in (1, 2, 3)])
    params = loss._loss_params()

    def pure(td):
        return loss.loss_and_outputs(td, params)[0]

    # IQN fractions and SQL particles do not depend on the batch: under randomness="same" each is
    # drawn once with the per-batch shape and shared by the vmapped batches, so re-seeding before
    # each loop step gives the loop exactly vmap's draws and the values are compared for every loss.
    # IQ samples actions from batch-dependent distributions, which "same" refuses: it keeps "different".
    randomness = "same" if name in ("iqn", "m_iqn", "soft_q") else "different"
    torch.manual_seed(0)
    values = torch.vmap(pure, randomness=randomness)(stacked)
    assert values.shape[0] == 3
    for i in range(3):
        torch.manual_seed(0)
        torch.testing.assert_close(values[i], loss.loss_and_outputs(stacked[i], params)[0])


@pytest.mark.parametrize(
    "name",
    [
        *[n for n in ALL if n not in ("torchrl_sac", "virel", "mdac")],
        *[pytest.param(
            n,
            marks=pytest.mark.xfail(
                reason="TorchRL's SACLoss fails too: vmap cannot give in-place action sampling different randomness",
                strict=True,
            ),
        ) for n in ("virel", "mdac", "torchrl_sac")],
    ],
)
def test_vmap_of_the_forward_call(name):
    loss = make(name)
    stacked = torch.stack([batch(name, seed=s) for s in (1, 2, 3)])
    key = loss_terms(run(loss, batch(name)))[0]
    values = torch.vmap(lambda td: loss(td)[key], randomness="different")(stacked)
    assert values.shape[0] == 3 and torch.isfinite(values).all()
    if name not in ("iqn", "m_iqn", "iq", "soft_q", "mdac"):  # no random draw in the loss itself
        for i in range(3):
            torch.testing.assert_close(values[i], run(loss, stacked[i].clone())[key])
