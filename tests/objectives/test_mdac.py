"""MDACLoss against numbers worked out independently (float64, Python ``math`` on hand-built batches).

* Continuous (tanh-Gaussian with fixed mean and scale): with every transition terminated the target is
  ``r + beta f(alpha ln pi(a|s))``, ``ln pi`` written out as the Gaussian density of ``atanh(a)`` minus
  ``ln(1 - a^2)``; checked for the three bounding functions, with the clip fraction and the log-density range.
* Categorical policy over two actions (exact expectation) with two different critic tables: the full target
  ``r + beta f(alpha ln pi(a|s)) + gamma [sum_a' pi(a'|s') (min_i Q_i(s', a') - f(alpha ln pi(a'|s')))]``.
* Actor and temperature terms of SAC, and the argument checks.
"""
from __future__ import annotations

import math

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule
from torch import nn
from torchrl.data import Bounded, Categorical
from torchrl.modules import ProbabilisticActor, TanhNormal

from torchrl_reg.modules.critics import state_action_value_network
from torchrl_reg.modules.policies import tanh_normal_policy
from torchrl_reg.objectives import MDACLoss

F64 = torch.float64
GAMMA = 0.875  # exact in float32 (TorchRL's TD0Estimator keeps gamma as a float32 buffer)
LOC, SCALE = (0.3, -0.2), (0.5, 1.5)


class _FixedGaussian(nn.Module):
    """Outputs the same (loc, scale) for every state; the parameters exist so the loss has an actor to train."""

    def __init__(self):
        super().__init__()
        self.loc = nn.Parameter(torch.tensor(LOC, dtype=F64))
        self.log_scale = nn.Parameter(torch.tensor(SCALE, dtype=F64).log())

    def forward(self, observation: torch.Tensor):
        shape = (*observation.shape[:-1], 2)
        return self.loc.expand(shape), self.log_scale.exp().expand(shape)


def _continuous_loss(**kwargs) -> MDACLoss:
    box = Bounded(-1.0, 1.0, shape=(2,), dtype=F64)
    actor = ProbabilisticActor(
        TensorDictModule(_FixedGaussian(), in_keys=["observation"], out_keys=["loc", "scale"]),
        in_keys=["loc", "scale"], distribution_class=TanhNormal, distribution_kwargs={"low": -1.0, "high": 1.0},
        spec=box,
    )
    critic = state_action_value_network(3, 2, num_cells=(4,)).to(F64)
    loss = MDACLoss(actor, critic, **kwargs)
    loss.make_value_estimator(gamma=GAMMA)
    return loss


def _log_pi(action: tuple[float, float]) -> float:
    return sum(
        -0.5 * ((math.atanh(a) - m) / s) ** 2 - math.log(s) - 0.5 * math.log(2 * math.pi) - math.log(1 - a * a)
        for a, m, s in zip(action, LOC, SCALE)
    )


ACTIONS = [(0.4, -0.7), (0.999, 0.0), (-0.1, 0.2)]
REWARDS = [1.0, -0.5, 2.0]


def _terminal_batch() -> TensorDict:
    yes = torch.ones(3, 1, dtype=torch.bool)
    return TensorDict(
        {
            "observation": torch.zeros(3, 3, dtype=F64),
            "action": torch.tensor(ACTIONS, dtype=F64),
            ("next", "observation"): torch.zeros(3, 3, dtype=F64),
            ("next", "reward"): torch.tensor(REWARDS, dtype=F64).unsqueeze(-1),
            ("next", "done"): yes,
            ("next", "terminated"): yes.clone(),
        },
        [3],
    )


@pytest.mark.parametrize("bound", ["tanh", "clip", "none"])
def test_continuous_target_with_the_bootstrap_cut(bound):
    beta, alpha, c = 0.9, 0.7, 2.0
    loss = _continuous_loss(beta=beta, alpha_init=alpha, bound=bound, **({} if bound == "none" else {"bound_scale": c}))
    f = {"tanh": lambda x: math.tanh(x / c), "clip": lambda x: min(1.0, max(-1.0, x / c)), "none": lambda x: x}[bound]
    scaled = [alpha * _log_pi(a) for a in ACTIONS]
    # The second action's ln pi is large (-> the clip saturates); the others are inside [-c, c].
    assert abs(scaled[1]) > c and all(abs(x) < c for x in (scaled[0], scaled[2]))
    expected = torch.tensor([r + beta * f(x) for r, x in zip(REWARDS, scaled)], dtype=F64)
    torch.testing.assert_close(loss.target(_terminal_batch()), expected, rtol=1e-12, atol=1e-12)
    out = loss(_terminal_batch())
    torch.testing.assert_close(out["munchausen_term"], torch.tensor(sum(beta * f(x) for x in scaled) / 3, dtype=F64))
    assert out["scaled_log_pi_max"] >= max(scaled) - 1e-12 and out["scaled_log_pi_min"] <= min(scaled) + 1e-12
    if bound == "none":
        assert out["clip_fraction"] == 0
    else:
        # Per transition: (current > c) and (next-state sample > c), averaged; the current term is outside on 1 of 3.
        assert out["clip_fraction"] >= 1 / 6 - 1e-12


class _Table(nn.Module):
    def __init__(self, table: list[list[float]]):
        super().__init__()
        self.table = nn.Parameter(torch.tensor(table, dtype=F64))

    def forward(self, observation: torch.Tensor, action: torch.Tensor | None = None) -> torch.Tensor:
        values = observation @ self.table
        return values if action is None else values.gather(-1, action.long().unsqueeze(-1))


LOGITS = [[0.2, -0.4], [1.5, 0.0]]
Q1 = [[1.0, 2.0], [0.5, -1.0]]
Q2 = [[1.5, 1.0], [0.0, -0.5]]


def _categorical_loss(**kwargs) -> MDACLoss:
    actor = ProbabilisticActor(
        TensorDictModule(_Table(LOGITS), in_keys=["observation"], out_keys=["logits"]),
        in_keys=["logits"], distribution_class=torch.distributions.Categorical, spec=Categorical(2),
    )
    critic = TensorDictModule(_Table(Q1), in_keys=["observation", "action"], out_keys=["state_action_value"])
    loss = MDACLoss(actor, critic, target_entropy=-0.3, **kwargs)
    with torch.no_grad():  # two different critics, online and target alike
        for params in (loss.qvalue_network_params, loss.target_qvalue_network_params):
            params["module", "table"].data.copy_(torch.tensor([Q1, Q2], dtype=F64))
    loss.make_value_estimator(gamma=GAMMA)
    return loss


def test_categorical_target_with_exact_expectation_and_the_min_of_two_critics():
    beta, alpha, c = 0.8, 0.6, 1.0
    loss = _categorical_loss(beta=beta, alpha_init=alpha, bound="tanh", bound_scale=c)
    # Transitions (s, a, r, s', terminated): the last one cuts the bootstrap.
    rows = [(0, 1, 0.5, 1, False), (1, 0, -1.0, 0, False), (1, 1, 2.0, 1, True)]
    eye = torch.eye(2, dtype=F64)
    batch = TensorDict(
        {
            "observation": eye[[r[0] for r in rows]],
            "action": torch.tensor([r[1] for r in rows]),
            ("next", "observation"): eye[[r[3] for r in rows]],
            ("next", "reward"): torch.tensor([[r[2]] for r in rows], dtype=F64),
            ("next", "done"): torch.tensor([[r[4]] for r in rows]),
            ("next", "terminated"): torch.tensor([[r[4]] for r in rows]),
        },
        [3],
    )

    def log_pi(s: int, a: int) -> float:
        z = math.log(sum(math.exp(x) for x in LOGITS[s]))
        return LOGITS[s][a] - z

    def f(x: float) -> float:
        return math.tanh(x / c)

    expected = []
    for s, a, r, s_next, terminated in rows:
        y = r + beta * f(alpha * log_pi(s, a))
        if not terminated:
            y += GAMMA * sum(
                math.exp(log_pi(s_next, b)) * (min(Q1[s_next][b], Q2[s_next][b]) - f(alpha * log_pi(s_next, b)))
                for b in range(2)
            )
        expected.append(y)
    torch.testing.assert_close(loss.target(batch), torch.tensor(expected, dtype=F64), rtol=1e-12, atol=1e-12)

    # Actor and temperature terms (SAC's), exact over the two actions, per sample.
    out = _categorical_loss(beta=beta, alpha_init=alpha, reduction="none")(batch)
    for i, (s, _, _, _, _) in enumerate(rows):
        pi = [math.exp(log_pi(s, b)) for b in range(2)]
        actor = sum(p * (alpha * log_pi(s, b) - min(Q1[s][b], Q2[s][b])) for b, p in enumerate(pi))
        neg_entropy = sum(p * log_pi(s, b) for b, p in enumerate(pi))
        assert out["loss_actor"][i].item() == pytest.approx(actor, abs=1e-12)
        assert out["loss_alpha"][i].item() == pytest.approx(-math.log(alpha) * (neg_entropy - 0.3), abs=1e-12)


def test_fixed_temperature_has_no_temperature_loss_and_no_parameter():
    loss = _continuous_loss(alpha_init=0.2, fixed_alpha=True)
    assert "log_alpha" not in dict(loss.named_parameters())
    out = loss(_terminal_batch())
    assert out["loss_alpha"] == 0 and out["alpha"].item() == pytest.approx(0.2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (TorchRL's parameter checks call .item(), so the meta device cannot stand in)")
@pytest.mark.parametrize("fixed_alpha", [False, True])
def test_the_temperature_lives_on_the_networks_device(fixed_alpha):
    # The GPU check (H200, 2026-11-26) found log_alpha on the CPU beside CUDA networks: the compiled fused
    # Adam step then mixed a CPU moment with a CUDA beta1 (benchmarks/results/gpu/README.md).
    box = Bounded(-1.0, 1.0, shape=(2,), device="cuda")
    actor = tanh_normal_policy(3, box, num_cells=(4,)).to("cuda")
    critic = state_action_value_network(3, 2, num_cells=(4,)).to("cuda")
    loss = MDACLoss(actor, critic, fixed_alpha=fixed_alpha)
    assert loss.log_alpha.device.type == "cuda"


def test_temperature_gradient_moves_towards_the_target_entropy():
    # -ln(alpha) (ln pi + H_target): d/d ln(alpha) = -(ln pi + H_target) averaged.
    loss = _categorical_loss(beta=0.5, alpha_init=1.0)
    batch = TensorDict(
        {
            "observation": torch.eye(2, dtype=F64), "action": torch.tensor([0, 1]),
            ("next", "observation"): torch.eye(2, dtype=F64), ("next", "reward"): torch.zeros(2, 1, dtype=F64),
            ("next", "done"): torch.zeros(2, 1, dtype=torch.bool), ("next", "terminated"): torch.zeros(2, 1, dtype=torch.bool),
        },
        [2],
    )
    loss(batch)["loss_alpha"].backward()
    neg_entropy = [
        sum(math.exp(x - math.log(sum(math.exp(y) for y in row))) * (x - math.log(sum(math.exp(y) for y in row))) for x in row)
        for row in LOGITS
    ]
    assert loss.log_alpha.grad.item() == pytest.approx(-sum(h - 0.3 for h in neg_entropy) / 2, abs=1e-12)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"beta": 1.0}, "beta"),
        ({"beta": -0.1}, "beta"),
        ({"bound": "sigmoid"}, "bound"),
        ({"bound_scale": 0.0}, "bound_scale"),
        ({"alpha_init": 0.0}, "alpha_init"),
        ({"num_qvalue_nets": 3}, "num_qvalue_nets"),
        ({"loss_function": "huber"}, "loss_function"),
        ({"target_entropy": "high"}, "target_entropy"),
        ({"fixed_alpha": "yes"}, "fixed_alpha"),
    ],
)
def test_bad_arguments_are_refused(kwargs, match):
    box = Bounded(-1.0, 1.0, shape=(2,))
    with pytest.raises((ValueError, TypeError), match=match):
        MDACLoss(tanh_normal_policy(3, box, num_cells=(4,)), state_action_value_network(3, 2, num_cells=(4,)), **kwargs)


def test_swapped_networks_and_auto_entropy_without_a_box_are_refused():
    box = Bounded(-1.0, 1.0, shape=(2,))
    with pytest.raises(TypeError, match="swapped"):
        MDACLoss(state_action_value_network(3, 2, num_cells=(4,)), tanh_normal_policy(3, box, num_cells=(4,)))
    actor = ProbabilisticActor(
        TensorDictModule(_Table(LOGITS), in_keys=["observation"], out_keys=["logits"]),
        in_keys=["logits"], distribution_class=torch.distributions.Categorical, spec=Categorical(2),
    )
    critic = TensorDictModule(_Table(Q1), in_keys=["observation", "action"], out_keys=["state_action_value"])
    with pytest.raises(ValueError, match="target_entropy='auto'"):
        MDACLoss(actor, critic)


def test_an_action_outside_the_box_is_refused():
    loss = _continuous_loss()
    batch = _terminal_batch()
    batch["action"][0, 0] = 1.5
    with pytest.raises(ValueError, match="inside the action box"):
        loss(batch)


# -- per-term bounds -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "terms,f_c,f_s",
    [
        ({"bound_successor": "none"}, "tanh", "none"),  # bounds only the current term
        ({"bound_current": "none"}, "none", "tanh"),  # bounds only the successor term
        ({"bound": "clip", "bound_current": "tanh", "bound_current_scale": 3.0}, "tanh3", "clip"),
    ],
)
def test_per_term_bounds_in_the_target_by_hand(terms, f_c, f_s):
    """Two transitions of the categorical batch: one terminated (the current term alone), one not (both terms),
    with each term through its own bound, written out in Python floats."""
    beta, alpha = 0.8, 0.6
    loss = _categorical_loss(beta=beta, alpha_init=alpha, **terms)
    fs = {
        "tanh": lambda x: math.tanh(x / 10.0), "tanh3": lambda x: math.tanh(x / 3.0),
        "clip": lambda x: min(1.0, max(-1.0, x / 10.0)), "none": lambda x: x,
    }
    rows = [(0, 1, 0.5, 1, False), (1, 1, 2.0, 1, True)]
    eye = torch.eye(2, dtype=F64)
    batch = TensorDict(
        {
            "observation": eye[[r[0] for r in rows]], "action": torch.tensor([r[1] for r in rows]),
            ("next", "observation"): eye[[r[3] for r in rows]],
            ("next", "reward"): torch.tensor([[r[2]] for r in rows], dtype=F64),
            ("next", "done"): torch.tensor([[r[4]] for r in rows]), ("next", "terminated"): torch.tensor([[r[4]] for r in rows]),
        },
        [2],
    )

    def log_pi(s: int, a: int) -> float:
        return LOGITS[s][a] - math.log(sum(math.exp(x) for x in LOGITS[s]))

    expected = []
    for s, a, r, s_next, terminated in rows:
        y = r + beta * fs[f_c](alpha * log_pi(s, a))
        if not terminated:
            y += GAMMA * sum(
                math.exp(log_pi(s_next, b)) * (min(Q1[s_next][b], Q2[s_next][b]) - fs[f_s](alpha * log_pi(s_next, b)))
                for b in range(2)
            )
        expected.append(y)
    torch.testing.assert_close(loss.target(batch), torch.tensor(expected, dtype=F64), rtol=1e-12, atol=1e-12)


def test_per_term_bounds_default_to_the_shared_one():
    loss = _continuous_loss()
    assert (loss.bound_current, loss.bound_current_scale, loss.bound_successor, loss.bound_successor_scale) == ("tanh", 10.0, "tanh", 10.0)
    loss = _continuous_loss(bound="clip", bound_scale=2.0, bound_successor="none")
    assert (loss.bound_current, loss.bound_current_scale, loss.bound_successor, loss.bound_successor_scale) == ("clip", 2.0, "none", None)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"bound_current": "sigmoid"}, r"bound_current must be one of \['tanh', 'clip', 'none'\]"),
        ({"bound_successor_scale": 0.0}, "bound_successor_scale must be a finite number > 0"),
        ({"bound_current": "none", "bound_current_scale": 2.0}, "bound_current_scale=2.0 is not used by bound_current='none'"),
        ({"bound": "none", "bound_successor_scale": 2.0}, "bound_successor_scale=2.0 is not used by bound='none'"),
        ({"bound": "none", "bound_scale": 3.0}, "bound_scale=3.0 is not used by bound='none'"),
        (
            {"bound_scale": 3.0, "bound_current": "none", "bound_successor_scale": 2.0},
            "bound_scale=3.0 is not used by bound_current='none', bound_successor_scale=2.0",
        ),
    ],
)
def test_per_term_arguments_are_checked(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _continuous_loss(**kwargs)


# -- refusals --------------------------------------------------------------------------------------------------------


def _deterministic_actors():
    from tensordict.nn.distributions import Delta
    from torchrl.modules import Actor, TanhDelta

    from torchrl_reg.modules.policies import multicategorical_policy

    box = Bounded(-1.0, 1.0, shape=(2,))
    net = lambda n: TensorDictModule(nn.Linear(3, n), in_keys=["observation"], out_keys=["param"])  # noqa: E731
    return {
        "torchrl_actor": Actor(nn.Linear(3, 2), spec=box),
        "delta": ProbabilisticActor(net(2), in_keys=["param"], distribution_class=Delta, spec=box),
        "tanh_delta": ProbabilisticActor(
            net(2), in_keys=["param"], distribution_class=TanhDelta, distribution_kwargs={"low": -1.0, "high": 1.0}, spec=box
        ),
        "no_rsample": multicategorical_policy(3, box, num_bins=3, num_cells=(4,)),
    }


@pytest.mark.parametrize("name", ["torchrl_actor", "delta", "tanh_delta", "no_rsample"])
@pytest.mark.parametrize("fixed_alpha", [False, True])
def test_an_actor_without_a_finite_density_or_a_reparametrized_sample_is_refused(name, fixed_alpha):
    actor = _deterministic_actors()[name]
    with pytest.raises(TypeError, match="tanh_normal_policy") as info:
        MDACLoss(actor, state_action_value_network(3, 2, num_cells=(4,)), fixed_alpha=fixed_alpha)
    assert "reparametrized" in str(info.value)


def test_a_one_dimensional_action_without_its_trailing_dimension_is_refused():
    box = Bounded(-2.0, 2.0, shape=(1,))  # Pendulum's
    loss = MDACLoss(tanh_normal_policy(3, box, num_cells=(4,)), state_action_value_network(3, 1, num_cells=(4,)))
    loss.make_value_estimator(gamma=0.9)
    no = torch.zeros(4, 1, dtype=torch.bool)
    batch = TensorDict(
        {
            "observation": torch.zeros(4, 3), "action": torch.zeros(4),
            ("next", "observation"): torch.zeros(4, 3), ("next", "reward"): torch.zeros(4, 1),
            ("next", "done"): no, ("next", "terminated"): no,
        },
        [4],
    )
    for call in (loss, loss.target, loss.check_inputs):
        with pytest.raises(ValueError, match=r"must have shape \[4, 1\].*got shape \[4\].*unsqueeze\(-1\)"):
            call(batch.clone())
    batch["action"] = torch.zeros(4, 1)
    assert set(loss(batch).keys()) == set(loss.out_keys)


@pytest.mark.parametrize("entry", ["forward", "target"])
@pytest.mark.parametrize(
    "edit,match",
    [
        (lambda b: b["action"].__setitem__((0, 0), 5.0), "inside the action box"),
        (lambda b: b.set("steps_to_next_obs", torch.tensor([[1], [-1], [1]])), "a positive integer"),
        (lambda b: b.set("steps_to_next_obs", torch.tensor([[1], [2**62], [1]])), "a positive integer"),
        (lambda b: b.set(("next", "done"), torch.zeros(3, 1)), "bool or integer 0/1 flag"),
        (lambda b: b.exclude(("next", "reward")), "missing the key"),
    ],
)
def test_every_public_entry_point_checks_the_batch_as_forward_does(entry, edit, match):
    loss = _continuous_loss()
    batch = _terminal_batch()
    edited = edit(batch)
    batch = batch if edited is None else edited
    with pytest.raises((ValueError, KeyError, TypeError), match=match):
        loss(batch) if entry == "forward" else loss.target(batch)


def test_target_skips_the_input_checks_only_inside_inputs_checked():
    loss = _continuous_loss()
    batch = _terminal_batch()
    batch["action"][0, 0] = 5.0
    with loss.inputs_checked():
        loss.target(batch)  # the caller vouches for its transitions, as for forward
    with pytest.raises(ValueError, match="inside the action box"):
        loss.target(batch)


@pytest.mark.parametrize("value", [1e9, 1.4])
def test_a_target_entropy_above_the_boxs_maximum_is_refused_with_both_numbers(value):
    # The largest entropy on [-1, 1]^2 is the uniform's, 2 ln 2 = 1.3863 nats.
    with pytest.raises(ValueError, match=rf"target_entropy={value} is above .* 1\.38629 nats"):
        _continuous_loss(target_entropy=value)
    assert _continuous_loss(target_entropy=1.38).target_entropy == 1.38


def test_a_target_entropy_above_ln_n_is_refused_for_a_finite_support():
    actor = ProbabilisticActor(
        TensorDictModule(_Table(LOGITS), in_keys=["observation"], out_keys=["logits"]),
        in_keys=["logits"], distribution_class=torch.distributions.Categorical, spec=Categorical(2),
    )
    critic = TensorDictModule(_Table(Q1), in_keys=["observation", "action"], out_keys=["state_action_value"])
    with pytest.raises(ValueError, match=r"ln 2, the uniform's over the 2 actions: 0\.693147 nats"):
        MDACLoss(actor, critic, target_entropy=0.7)
