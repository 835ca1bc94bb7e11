"""Silent misuse made loud: integer flags, action encodings, priority weights, estimators,
constructor arguments. Expected numbers are worked out by hand in the comments."""
from __future__ import annotations

import math
import warnings

import pytest
import torch
from tensordict import TensorDict
from torch import nn
from torchrl.data import Bounded, Categorical, OneHot
from torchrl.modules import QValueActor
from torchrl.objectives import DQNLoss, SACLoss
from torchrl.objectives.utils import ValueEstimators

from tests.objectives import registry_losses
from torchrl_reg.modules.critics import state_value_network
from torchrl_reg.modules.iqn import ImplicitQuantileNetwork
from torchrl_reg.modules.policies import tanh_normal_policy
from torchrl_reg.objectives import (
    AdvantageLearningLoss,
    ImplicitQLoss,
    IQNLoss,
    MIRLLoss,
    MunchausenDQNLoss,
    MunchausenIQNLoss,
)
from torchrl_reg.value import RegValueEstimators, SoftTD0Estimator


def identity_actor(spec=None) -> QValueActor:
    """q(s, .) = s: a 2-action Q-network whose action values are the observation itself."""
    linear = nn.Linear(2, 2)
    with torch.no_grad():
        linear.weight.copy_(torch.eye(2))
        linear.bias.zero_()
    return QValueActor(linear, in_keys=["observation"], spec=spec if spec is not None else Categorical(2))


def hand_batch(flag_dtype=torch.bool, action=None) -> TensorDict:
    # sample 0: s=[1, 0], a=1, r=2, s'=[0, 2], terminated; sample 1: s=[0.5, 2], a=0, r=0.5, s'=[1, 3]
    terminated = torch.tensor([[1], [0]]).to(flag_dtype)
    return TensorDict(
        {
            "observation": torch.tensor([[1.0, 0.0], [0.5, 2.0]]),
            "action": torch.tensor([1, 0]) if action is None else action,
            ("next", "observation"): torch.tensor([[0.0, 2.0], [1.0, 3.0]]),
            ("next", "reward"): torch.tensor([[2.0], [0.5]]),
            ("next", "terminated"): terminated,
            ("next", "done"): terminated.clone(),
        },
        [2],
    )


@pytest.mark.parametrize("flag_dtype", [torch.bool, torch.uint8, torch.int32, torch.int64])
def test_pal_integer_flags_are_read_exactly(flag_dtype):
    # PAL, alpha=0.5, gamma=0.5, l2, q = s (online = target):
    # sample 0: pred q(s,1)=0; AL 0.5*(0-1)=-0.5; terminal: persistent term 0 -> bonus max(-0.5, 0)=0;
    #           target 2 (no bootstrap); loss (0-2)^2 = 4.
    # sample 1: pred q(s,0)=0.5; AL 0.5*(0.5-2)=-0.75; persistent -0.5*(3-1)=-1 -> bonus -0.75;
    #           target 0.5 + 0.5*3 - 0.75 = 1.25; loss (0.5-1.25)^2 = 0.5625.
    # ~flag on integers gives -2 / -1: sample 0 would bootstrap with -2 (loss 0), sample 1 flips the
    # persistent term's sign (bonus +1, bootstrap -1.5: loss 0.25).
    loss = AdvantageLearningLoss(identity_actor(), alpha=0.5, persistent=True, loss_function="l2", reduction="none")
    loss.make_value_estimator(gamma=0.5)
    out = loss(hand_batch(flag_dtype))
    torch.testing.assert_close(out["loss"], torch.tensor([4.0, 0.5625]))


@pytest.mark.parametrize("flag_dtype", [torch.uint8, torch.int64])
def test_munchausen_integer_flags_match_bool_flags(flag_dtype):
    loss = MunchausenDQNLoss(identity_actor(), alpha=0.9, tau=0.5, loss_function="l2", reduction="none")
    loss.make_value_estimator(gamma=0.5)
    # M-DQN, tau=0.5, alpha=0.9, clip [-1, 0]: sample 0 (terminal): tau ln pi(1|[1,0]) =
    # 0 - 1 - 0.5 ln(1 + e^-2) = -1.0635 -> clipped to -1, bonus -0.9; target 2 - 0.9 = 1.1; loss 1.21.
    # sample 1: tau ln pi(0|[0.5,2]) = -1.5 - 0.5 ln(1 + e^-3) -> -1 after the clip, bonus -0.9;
    # soft value at [1, 3] = 3 + 0.5 ln(1 + e^-4); target 0.5 + 0.5 * that - 0.9.
    v1 = 3 + 0.5 * math.log(1 + math.exp(-4))
    t1 = 0.5 + 0.5 * v1 - 0.9
    expected = torch.tensor([(0.0 - 1.1) ** 2, (0.5 - t1) ** 2])
    torch.testing.assert_close(loss(hand_batch(flag_dtype))["loss"], expected)


def test_float_flags_are_refused():
    loss = MunchausenDQNLoss(identity_actor())
    with pytest.raises(TypeError, match="bool or integer 0/1 flag, got dtype torch.float32"):
        loss(hand_batch(torch.float32))


def test_index_actions_to_a_one_hot_loss_are_refused_naming_both():
    loss = MunchausenDQNLoss(identity_actor(OneHot(2)))
    with pytest.raises(ValueError, match="action_space='one-hot'.*shape \\[2, 1\\].*action_space='categorical'"):
        loss(hand_batch(action=torch.tensor([[1], [0]])))
    with pytest.raises(ValueError, match="one-hot \\(each row has exactly one 1"):
        loss(hand_batch(action=torch.tensor([[0.5, 0.5], [1.0, 0.0]])))


@pytest.mark.parametrize("one_hot_dtype", [torch.bool, torch.int64, torch.float32])
def test_one_hot_actions_of_any_dtype_give_the_categorical_losses_numbers(one_hot_dtype):
    # TorchRL's OneHot(n).rand() draws bool rows, which argmax does not take
    one_hot = torch.tensor([[0, 1], [1, 0]]).to(one_hot_dtype)
    for make in (MunchausenDQNLoss, AdvantageLearningLoss):
        expected = make(identity_actor())(hand_batch())["loss"]
        assert torch.equal(make(identity_actor(OneHot(2)))(hand_batch(action=one_hot))["loss"], expected)
    kwargs = {"num_quantiles": 4, "num_target_quantiles": 4, "num_policy_quantiles": 4}
    torch.manual_seed(1)
    expected = MunchausenIQNLoss(iqn_actor(), **kwargs)(hand_batch())["loss"]
    torch.manual_seed(1)
    assert torch.equal(MunchausenIQNLoss(iqn_actor(OneHot(2)), **kwargs)(hand_batch(action=one_hot))["loss"], expected)


def iqn_actor(spec=None) -> QValueActor:
    torch.manual_seed(0)
    net = ImplicitQuantileNetwork.mlp(2, 2, num_cells=(8,), embedding_dim=4, num_policy_quantiles=4)
    return QValueActor(net, in_keys=["observation"], spec=spec if spec is not None else Categorical(2))


def test_iqn_checks_the_action_encoding():
    loss = IQNLoss(iqn_actor(OneHot(2)), num_quantiles=4, num_target_quantiles=4, num_policy_quantiles=4)
    with pytest.raises(ValueError, match="one-hot"):
        loss(hand_batch(action=torch.tensor([1, 0])))
    with pytest.raises(ValueError, match="exactly one 1"):
        loss(hand_batch(action=torch.tensor([[1.0, 1.0], [1.0, 0.0]])))
    categorical = IQNLoss(iqn_actor(), num_quantiles=4, num_target_quantiles=4, num_policy_quantiles=4)
    with pytest.raises(TypeError, match="truncated"):
        categorical(hand_batch(action=torch.tensor([1.7, 0.0])))
    with pytest.raises(ValueError, match="action index in \\[0, 2\\)"):
        categorical(hand_batch(action=torch.tensor([2, 0])))


@pytest.mark.parametrize("weight", [-0.5, float("nan")])
def test_negative_or_nan_priority_weights_are_refused(weight):
    loss = MunchausenDQNLoss(identity_actor())
    batch = hand_batch()
    batch["priority_weight"] = torch.tensor([1.0, weight])
    with pytest.raises(ValueError, match="'priority_weight' must be finite and >= 0; first bad entry at index \\[1\\]"):
        loss(batch)


def test_out_of_box_actions_are_refused():
    spec = Bounded(-1.0, 1.0, shape=(2,))
    loss = ImplicitQLoss(tanh_normal_policy(2, spec, num_cells=(8,)), state_value_network(2, num_cells=(8,)))
    batch = hand_batch()
    batch["action"] = torch.tensor([[0.5, 1.5], [0.0, 0.0]])
    with pytest.raises(ValueError, match="inside the action box.*index \\[0, 1\\]"):
        loss(batch)


def test_check_finite_names_the_key_and_the_first_bad_index():
    loss = MunchausenDQNLoss(identity_actor(), check_finite=True)
    batch = hand_batch()
    batch["next", "reward"][1, 0] = float("nan")
    with pytest.raises(ValueError, match="\\('next', 'reward'\\) must be finite.*index \\[1, 0\\]"):
        loss(batch)
    MunchausenDQNLoss(identity_actor())(batch)  # off by default: no check, no sync


def test_missing_key_is_named():
    loss = MunchausenDQNLoss(identity_actor())
    batch = hand_batch().exclude(("next", "reward"))
    with pytest.raises(KeyError, match="missing the key\\(s\\) \\[\\('next', 'reward'\\)\\]"):
        loss(batch)


def soft_target(r, gamma, not_terminal, q_next, tau):
    return r + gamma * not_terminal * tau * math.log(sum(math.exp(q / tau) for q in q_next))


def test_softtd0_by_name_and_enum_on_dqnloss_and_on_advantage_learning():
    # Soft-DQN with tau=0.5, gamma=0.5 on the hand batch: targets 2 (terminal) and
    # 0.5 + 0.5 * 0.5 ln(e^2 + e^6); DQNLoss(l2) averages (pred - target)^2.
    t0, t1 = 2.0, soft_target(0.5, 0.5, 1.0, [1.0, 3.0], 0.5)
    expected = ((0.0 - t0) ** 2 + (0.5 - t1) ** 2) / 2
    for value_type in ("softtd0", RegValueEstimators.SoftTD0):
        dqn = DQNLoss(identity_actor(), action_space="categorical", delay_value=True)
        dqn.make_value_estimator(value_type, gamma=0.5, tau=0.5)
        assert isinstance(dqn.value_estimator, SoftTD0Estimator)
        assert dqn(hand_batch())["loss"].item() == pytest.approx(expected, rel=1e-6)
    # AL with alpha=0: DQN with the soft bootstrap, the same number.
    al = AdvantageLearningLoss(identity_actor(), alpha=0.0, loss_function="l2")
    al.make_value_estimator("softtd0", gamma=0.5, tau=0.5)
    assert al(hand_batch())["loss"].item() == pytest.approx(expected, rel=1e-6)


def test_value_estimator_assignment_is_not_ignored():
    loss = AdvantageLearningLoss(identity_actor(), alpha=0.0, loss_function="l2")
    loss.value_estimator = SoftTD0Estimator(gamma=0.5, tau=0.5, value_network=None)
    assert isinstance(loss.value_estimator, SoftTD0Estimator)
    t0, t1 = 2.0, soft_target(0.5, 0.5, 1.0, [1.0, 3.0], 0.5)
    assert loss(hand_batch())["loss"].item() == pytest.approx(((0.0 - t0) ** 2 + (0.5 - t1) ** 2) / 2, rel=1e-6)


def test_estimators_the_loss_cannot_use_are_refused_with_the_reason():
    loss = MunchausenDQNLoss(identity_actor())
    for value_type in (ValueEstimators.TDLambda, ValueEstimators.TD1, "tdlambda"):
        with pytest.raises(NotImplementedError, match="Only TD\\(0\\) is supported"):
            loss.make_value_estimator(value_type, gamma=0.9)
    with pytest.raises(NotImplementedError, match="does not take a SoftTD0Estimator"):
        IQNLoss(iqn_actor()).make_value_estimator("softtd0", gamma=0.9, tau=0.1)


def test_munchausen_takes_softtd0_only_with_its_own_tau():
    td0 = MunchausenDQNLoss(identity_actor(), tau=0.5, loss_function="l2")
    td0.make_value_estimator(gamma=0.5)
    soft = MunchausenDQNLoss(identity_actor(), tau=0.5, loss_function="l2")
    soft.make_value_estimator("softtd0", gamma=0.5, tau=0.5)
    torch.testing.assert_close(soft(hand_batch())["loss"], td0(hand_batch())["loss"])
    with pytest.raises(ValueError, match="tau=0.1 but the loss has tau=0.5"):
        soft.make_value_estimator(RegValueEstimators.SoftTD0, gamma=0.5, tau=0.1)
    assert soft.value_estimator.tau == 0.5  # the previous estimator is kept


@pytest.mark.parametrize("gamma", [-0.5, 1.5, float("nan")])
def test_gamma_outside_unit_interval_is_refused(gamma):
    loss = MunchausenDQNLoss(identity_actor())
    with pytest.raises(ValueError, match="gamma must be a number in \\[0, 1\\]"):
        loss.make_value_estimator(gamma=gamma)


def test_constructor_arguments_are_checked():
    with pytest.raises(ValueError, match="persistent must be True or False, got persistent='no'"):
        AdvantageLearningLoss(identity_actor(), persistent="no")
    with pytest.raises(ValueError, match="use_prioritized_weights must be one of"):
        IQNLoss(iqn_actor(), use_prioritized_weights="yes")
    with pytest.raises(ValueError, match="num_actions=5 does not match the 2 actions"):
        MIRLLoss(identity_actor(), num_actions=5)
    spec = Bounded(-1.0, 1.0, shape=(2,))
    policy, value = tanh_normal_policy(2, spec, num_cells=(8,)), state_value_network(2, num_cells=(8,))
    with pytest.raises(TypeError, match="swapped"):
        ImplicitQLoss(value, policy)


def test_mirl_warns_once_when_its_updates_are_never_called():
    loss = MIRLLoss(identity_actor())
    with pytest.warns(UserWarning, match="update_prior.*update_beta.*never called"):
        for _ in range(3):
            loss(hand_batch())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss(hand_batch())  # once only
    driven = MIRLLoss(identity_actor())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(3):
            driven.update_prior(hand_batch())
            driven.update_beta(driven(hand_batch()))


def test_reset_parameters_recursive_on_munchausen_iqn():
    loss = MunchausenIQNLoss(iqn_actor(), num_quantiles=4, num_target_quantiles=4, num_policy_quantiles=4)
    before = loss.value_network_params.clone()
    loss.reset_parameters_recursive()
    changed = [not torch.equal(a, b) for a, b in zip(before.values(True, True), loss.value_network_params.values(True, True))]
    assert any(changed)


def test_the_fused_update_checks_the_batch_before_its_compiled_step():
    from torchrl_reg.objectives import FusedAdamUpdate

    loss = AdvantageLearningLoss(identity_actor(), persistent=True)
    loss.make_value_estimator(gamma=0.5)
    update = FusedAdamUpdate(loss, torch.optim.Adam(loss.parameters()), max_grad_norm=None)
    with pytest.raises(TypeError, match="bool or integer 0/1 flag"):
        update(hand_batch(torch.float32))  # refused eagerly: nothing is compiled or stepped
    assert all(len(state) == 0 for state in update.optimizer.state.values())


def test_check_inputs_checks_transitions_once_and_leaves_weights_to_each_sample():
    # check_inputs: the layout and the transitions' own values, before a replay buffer; not the
    # priority weights, which a sampler attaches to each minibatch.
    loss = MunchausenDQNLoss(identity_actor(), check_finite=True)
    batch = hand_batch()
    batch["observation"][0, 1] = float("inf")
    with pytest.raises(ValueError, match="'observation' must be finite.*index \\[0, 1\\]"):
        loss.check_inputs(batch)
    with pytest.raises(ValueError, match="an action index in \\[0, 2\\).*index \\[1\\]: 2"):
        loss.check_inputs(hand_batch(action=torch.tensor([1, 2])))
    with pytest.raises(KeyError, match="missing the key"):
        loss.check_inputs(hand_batch().exclude(("next", "reward")))
    weighted = hand_batch().set("priority_weight", torch.tensor([1.0, -1.0]))
    loss.check_inputs(weighted)  # weights are not the transitions' values
    with pytest.raises(ValueError, match="'priority_weight' must be finite and >= 0"):
        loss.check_batch(weighted, inputs=False)  # ... but every sampled batch's weights are checked


def test_an_update_told_the_inputs_are_checked_checks_its_first_batch_and_every_weight():
    from torchrl_reg.objectives import FusedAdamUpdate, make_update

    loss = MunchausenDQNLoss(identity_actor(), check_finite=True)
    loss.make_value_estimator(gamma=0.5)
    update = FusedAdamUpdate(loss, torch.optim.Adam(loss.parameters()), max_grad_norm=None, inputs_checked=True)
    nan_first = hand_batch()
    nan_first["next", "observation"][1, 0] = float("nan")
    with pytest.raises(ValueError, match="\\('next', 'observation'\\) must be finite.*index \\[1, 0\\]"):
        update(nan_first)  # the first batch is checked in full
    assert all(len(state) == 0 for state in update.optimizer.state.values())
    update(hand_batch())
    nan_later = hand_batch()
    nan_later["next", "observation"][1, 0] = float("nan")
    update(nan_later)  # later batches: the caller checked their transitions with check_inputs
    # (each sample also carries priority weights from the sampler: always checked)
    weighted = hand_batch().set("priority_weight", torch.tensor([1.0, float("nan")]))
    with pytest.raises(ValueError, match="'priority_weight' must be finite and >= 0.*index \\[1\\]"):
        update(weighted)
    with pytest.raises((TypeError, ValueError), match="inputs_checked"):
        make_update(loss, torch.optim.Adam(loss.parameters()), max_grad_norm=None, compile=False, inputs_checked="yes")


# -- library bounds --------------------------------------------------------------------------------------


class _StateActionQ(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 1)

    def forward(self, observation: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.linear(torch.cat([observation, action], -1))


def _soft_q(**kwargs):
    from tensordict.nn import TensorDictModule

    from torchrl_reg.objectives import SoftQLoss

    module = TensorDictModule(_StateActionQ(), in_keys=["observation", "action"], out_keys=["state_action_value"])
    return SoftQLoss(module, action_spec=Bounded(-1.0, 1.0, shape=(2,)), **kwargs)


def _discrete_virel(**kwargs):
    from torchrl_reg.objectives import DiscreteVIRELLoss

    return DiscreteVIRELLoss(identity_actor(), **kwargs)


#: Every registered loss of the library, built by its recipe (TorchRL's DQNLoss and SACLoss, the baselines, check
#: no steps_to_next_obs): a loss a recipe registers is covered here without a list to extend.
_EVERY_LOSS = [case for case in registry_losses.cases() if not issubclass(case.entry.loss_class, (DQNLoss, SACLoss))]


@pytest.mark.parametrize("steps, dtype", [
    (0, torch.int64), (-1, torch.int64), (1.5, torch.float32), (float("nan"), torch.float32), (float("inf"), torch.float32),
    (1e300, torch.float64), (2**62, torch.int64), (2**24 + 1, torch.int64),
])
@pytest.mark.parametrize("case", _EVERY_LOSS, ids=lambda case: case.id)
def test_steps_to_next_obs_must_be_a_positive_integer_in_every_loss(case, steps, dtype):
    # gamma ** steps_to_next_obs is the n-step discount: 0 gives gamma^0 = 1, -1 gives 1/gamma, 1.5 no n-step at all,
    # inf gamma^inf = 0 (the bootstrap cut without a word; inf passes inf >= 1 and inf == floor(inf)); 1e300 and 2**62
    # are whole numbers with the same gamma^steps = 0, and past 2**24 float32 holds no exact count of steps.
    loss, act = registry_losses.build(case)
    batch = registry_losses.batch(act, size=2)
    batch["steps_to_next_obs"] = torch.tensor([[2], [steps]], dtype=dtype)
    with pytest.raises(ValueError, match="'steps_to_next_obs' must be a positive integer.*index \\[1, 0\\]"):
        loss(batch)
    batch["steps_to_next_obs"] = torch.tensor([[2], [3]])
    loss(batch)  # n-step horizons are accepted
    batch["steps_to_next_obs"] = torch.tensor([[2], [2**24]])
    loss(batch)  # up to the bound


def test_steps_to_next_obs_of_bools_is_refused():
    batch = hand_batch()
    batch["steps_to_next_obs"] = torch.ones(2, 1, dtype=torch.bool)
    with pytest.raises(TypeError, match="'steps_to_next_obs' must hold positive integers.*torch.bool"):
        MunchausenDQNLoss(identity_actor())(batch)


@pytest.mark.parametrize("max_grad_norm", [-1.0, 0.0, float("nan"), float("inf")])
@pytest.mark.parametrize("fused", [False, True])
def test_make_update_refuses_a_max_grad_norm_that_is_not_a_finite_positive_number(max_grad_norm, fused):
    # -1 flips every gradient (ascent: one SGD step took an M-DQN loss from 0.8884 to 0.9622), NaN makes every
    # parameter NaN, 0 freezes learning; "no clipping" is max_grad_norm=None.
    from torchrl_reg.objectives import FusedAdamUpdate, make_update

    loss = MunchausenDQNLoss(identity_actor())
    optimizer = torch.optim.Adam(loss.parameters())
    with pytest.raises(ValueError, match=f"max_grad_norm must be a finite number > 0, got max_grad_norm={max_grad_norm}"):
        if fused:
            FusedAdamUpdate(loss, optimizer, max_grad_norm=max_grad_norm)
        else:
            make_update(loss, optimizer, max_grad_norm=max_grad_norm, compile=False)
    make_update(loss, optimizer, max_grad_norm=None, compile=False)  # no clipping


@pytest.mark.parametrize("tau", [1e-12, 1e-5, 10.5, 1e9])
def test_munchausen_temperatures_outside_the_stable_range_are_refused(tau):
    with pytest.raises(ValueError, match=rf"tau must be a finite number in \[0.0001, 10.0\], got tau={tau}"):
        MunchausenDQNLoss(identity_actor(), tau=tau)
    with pytest.raises(ValueError, match=r"tau must be a finite number in \[0.0001, 10.0\]"):
        MunchausenIQNLoss(iqn_actor(), tau=tau, num_quantiles=4, num_target_quantiles=4, num_policy_quantiles=4)
    for edge in (1e-4, 10.0):  # the range the recipes accept, ends included
        MunchausenDQNLoss(identity_actor(), tau=edge)


@pytest.mark.parametrize("tau", [-1.0, float("nan")])
def test_munchausen_tau_is_read_only_and_its_setter_checks_it(tau):
    """Assigning ``loss.tau`` changed the loss although the constructor refuses the same value."""
    losses = [
        MunchausenDQNLoss(identity_actor(), tau=0.5, loss_function="l2"),
        MunchausenIQNLoss(iqn_actor(), tau=0.5, num_quantiles=4, num_target_quantiles=4, num_policy_quantiles=4),
    ]
    for loss in losses:
        with pytest.raises(AttributeError):
            loss.tau = tau
        with pytest.raises(ValueError, match=r"tau must be a finite number in \[0.0001, 10.0\]"):
            loss.set_tau(tau)
        assert loss.tau == 0.5
    soft = MunchausenDQNLoss(identity_actor(), tau=0.5, loss_function="l2")
    soft.make_value_estimator("softtd0", gamma=0.5, tau=0.5)
    soft.set_tau(0.25)  # the soft TD(0) estimator follows: one target, one temperature
    assert soft.tau == soft.value_estimator.tau == 0.25
    td0 = MunchausenDQNLoss(identity_actor(), tau=0.25, loss_function="l2")
    td0.make_value_estimator(gamma=0.5)
    torch.testing.assert_close(soft(hand_batch())["loss"], td0(hand_batch())["loss"])


def test_soft_q_refuses_a_diverging_temperature_and_settings_its_proposal_ignores():
    from torchrl_reg.objectives import TemperatureSchedule

    with pytest.raises(ValueError, match=r"tau must be a finite number in \[0.0001, 10.0\], got tau=1e-30"):
        _soft_q(tau=1e-30)
    loss = _soft_q()
    with pytest.raises(ValueError, match=r"tau must be a finite number in \[0.0001, 10.0\]"):
        loss.set_tau(1e-30)
    with pytest.raises(ValueError, match=r"tau_final must be a finite number in \[0.0001, 10.0\]"):
        TemperatureSchedule(loss, tau_final=1e-30, annealing_num_steps=4)
    with pytest.raises(ValueError, match="uniform_weight=0.3 is not used with proposal='uniform'"):
        _soft_q(uniform_weight=0.3)
    _soft_q(uniform_weight=0.5)  # the default, which the recipes pass whatever the proposal


def test_virel_refuses_an_ema_rate_its_estimator_ignores():
    from torchrl_reg.objectives import VIRELLoss

    for estimator in ("replay", "batch"):
        with pytest.raises(ValueError, match=f"temperature_ema=0.05 is not used with temperature_estimator='{estimator}'"):
            _discrete_virel(temperature_estimator=estimator, temperature_ema=0.05)
    _discrete_virel(temperature_estimator="ema", temperature_ema=0.05)
    spec = Bounded(-1.0, 1.0, shape=(2,))
    with pytest.raises(ValueError, match="temperature_ema=0.05 is not used with temperature_estimator='replay'"):
        # the options are checked before the networks are read, so no critic is needed here
        VIRELLoss(tanh_normal_policy(2, spec, num_cells=(8,)), None, temperature_ema=0.05)


def test_the_eager_update_told_the_inputs_are_checked_skips_them_and_the_user_call_still_checks():
    from torchrl_reg.objectives import make_update

    loss = MunchausenDQNLoss(identity_actor(), check_finite=True)
    loss.make_value_estimator(gamma=0.5)
    update = make_update(loss, torch.optim.Adam(loss.parameters()), max_grad_norm=None, compile=False, inputs_checked=True)
    nan_reward = hand_batch()
    nan_reward["next", "reward"][1, 0] = float("nan")
    # The loop checked these transitions with check_inputs before the buffer: not again at each update.
    assert math.isnan(update(nan_reward.clone())["loss"].item())
    weighted = hand_batch().set("priority_weight", torch.tensor([1.0, -1.0]))
    with pytest.raises(ValueError, match="'priority_weight' must be finite and >= 0.*index \\[1\\]"):
        update(weighted)  # the sampler's weights come with each batch: always checked
    with pytest.raises(ValueError, match="\\('next', 'reward'\\) must be finite.*index \\[1, 0\\]"):
        loss(nan_reward)  # the user-facing call, outside the update, checks every batch
    with loss.inputs_checked():
        assert math.isnan(loss(nan_reward)["loss"].item())
    with pytest.raises(ValueError, match="must be finite"):
        loss(nan_reward)  # the block is left: checked again


def test_a_multi_hot_row_from_a_q_value_tie_is_refused_with_the_fix():
    # TorchRL's one-hot QValueActor marks every maximizer on a tie: q = [1, 1] gives the action [1, 1].
    actor = QValueActor(nn.Linear(2, 2), in_keys=["observation"], spec=OneHot(2))
    with torch.no_grad():
        actor.module[0].weight.zero_()
        actor.module[0].bias.fill_(1.0)
    tie = actor(TensorDict({"observation": torch.zeros(2, 2)}, [2]))["action"]
    assert tie.tolist() == [[1, 1], [1, 1]]
    loss = MunchausenDQNLoss(identity_actor(OneHot(2)))
    with pytest.raises(ValueError, match="multi-hot row when two action values tie.*action_space='categorical'"):
        loss(hand_batch(action=tie))


def test_range_checks_read_on_the_host_keep_their_bounds_and_stay_lazy_under_vmap():
    from torchrl_reg.objectives.common import _within

    def aminmax(*values):
        return torch.aminmax(torch.tensor(values))

    assert _within(*aminmax(0, 1), 0, 2) is True  # [0, 2): 0 and 1 are in
    assert _within(*aminmax(0, 2), 0, 2) is False and _within(*aminmax(-1, 1), 0, 2) is False
    assert _within(*aminmax(0.0, float("nan")), 0, float("inf")) is False  # NaN propagates and fails
    assert _within(*aminmax(0.0, float("inf")), 0, float("inf")) is False
    # Under torch.vmap a value cannot be read on the host: a tensor, skipped like every value check there.
    lazy = torch.vmap(lambda a: _within(*torch.aminmax(a), 0, 2).to(torch.int64))(torch.tensor([[0, 1], [0, 2]]))
    assert lazy.tolist() == [1, 0]
    loss = MunchausenDQNLoss(identity_actor())
    loss.make_value_estimator(gamma=0.5)
    with pytest.raises(ValueError, match="'action' must be an action index in \\[0, 2\\); first bad entry at index \\[1\\]: 2"):
        loss(hand_batch(action=torch.tensor([1, 2])))


def test_the_eager_update_sets_gradients_to_none_with_the_in_place_zeroed_update_s_parameters():
    from torchrl_reg.objectives import make_update

    def trained(in_place: bool) -> list[torch.Tensor]:
        torch.manual_seed(0)
        loss = MunchausenDQNLoss(QValueActor(nn.Linear(2, 2), in_keys=["observation"], spec=Categorical(2)))
        loss.make_value_estimator(gamma=0.5)
        optim = torch.optim.Adam(loss.parameters(), lr=0.1)
        if in_place:  # the earlier update: gradients zeroed in place, backward adding to zeros
            zero_grad = optim.zero_grad
            optim.zero_grad = lambda set_to_none=True: zero_grad(set_to_none=False)
        update = make_update(loss, optim, max_grad_norm=None, compile=False)
        for _ in range(3):
            update(hand_batch())
        assert all((p.grad is None) != in_place for p in loss.parameters())
        return [p.detach().clone() for p in loss.parameters()]

    for now, before in zip(trained(False), trained(True)):
        assert torch.equal(now, before)  # 0 + g == g exactly: the same parameters, bit for bit


# -- the first batch and the constructor: what the family owners check once -----------------------------------------


def _normal_actor_2d():
    """A 2-D ``ProbabilisticActor(distribution_class=Normal)``: its log_prob is per dimension, [N, 2]."""
    from tensordict.nn import NormalParamExtractor, TensorDictModule
    from torch.distributions import Normal
    from torchrl.modules import MLP, ProbabilisticActor

    net = nn.Sequential(MLP(in_features=3, out_features=4, num_cells=[8]), NormalParamExtractor())
    return ProbabilisticActor(TensorDictModule(net, ["observation"], ["loc", "scale"]), in_keys=["loc", "scale"],
                              spec=Bounded(-1.0, 1.0, shape=(2,)), distribution_class=Normal)


def box_batch(action_dim: int = 2, n: int = 16, reward_shape=None, flag_shape=None) -> TensorDict:
    g = torch.Generator().manual_seed(0)
    flags = torch.zeros(*(flag_shape or (n, 1)), dtype=torch.bool)
    return TensorDict({
        "observation": torch.randn(n, 3, generator=g),
        "action": torch.rand(n, action_dim, generator=g) * 2 - 1,
        ("next", "observation"): torch.randn(n, 3, generator=g),
        ("next", "reward"): torch.randn(*(reward_shape or (n, 1)), generator=g),
        ("next", "done"): flags,
        ("next", "terminated"): flags.clone(),
    }, [n])


def _box_losses():
    from torchrl_reg.modules.critics import state_action_value_network
    from torchrl_reg.objectives import MDACLoss, VIRELLoss

    return {
        "MDACLoss": lambda actor, width=2: MDACLoss(actor, state_action_value_network(3, width, num_cells=[8])),
        "VIRELLoss": lambda actor, width=2: VIRELLoss(actor, state_action_value_network(3, width, num_cells=[8])),
        "ImplicitQLoss": lambda actor, width=2: ImplicitQLoss(actor, state_value_network(3, num_cells=[8])),
    }


@pytest.mark.filterwarnings("ignore:.*VIRELLoss")
@pytest.mark.parametrize("name", ["MDACLoss", "VIRELLoss", "ImplicitQLoss"])
def test_a_log_prob_per_action_dimension_is_refused_on_the_first_batch(name):
    # it failed with "The size of tensor a (16) must match the size of tensor b (2)" deep inside the loss
    loss = _box_losses()[name](_normal_actor_2d())
    with pytest.raises(ValueError) as info:
        loss(box_batch())
    message = str(info.value)
    assert message.startswith(
        f"{name}: its {'policy_network' if name == 'ImplicitQLoss' else 'actor_network'}'s log_prob of one action has "
        "shape [1, 2], not [1] (one log-density per transition, the action of shape [2] scored whole): its distribution "
        "Normal scores each action dimension apart."
    ), message
    assert "torchrl.modules.IndependentNormal" in message and "tanh_normal_policy" in message


@pytest.mark.filterwarnings("ignore:.*VIRELLoss")
@pytest.mark.parametrize("name", ["MDACLoss", "VIRELLoss"])
def test_a_critic_of_another_action_width_is_refused_on_the_first_batch(name):
    # state_action_value_network(3, 2) on 1-D actions: "Expected size for first two dimensions of batch2 tensor ..."
    actor = tanh_normal_policy(3, Bounded(-1.0, 1.0, shape=(1,)), num_cells=[8])
    loss = _box_losses()[name](actor, width=2)
    with pytest.raises(ValueError) as info:
        loss(box_batch(action_dim=1))
    message = str(info.value)
    assert message.startswith(
        f"{name}: its qvalue_network fails on one transition's inputs {{'observation': [3], 'action': [1]}} (the action "
        "of the action spec's shape [1]): "
    ), message
    assert message.endswith("an MLP critic takes 3 + 1 = 4 input features (e.g. state_action_value_network(3, 1))")


def test_the_probe_runs_once_and_leaves_the_numbers_as_they_were():
    """The probe calls the networks on one transition without a gradient or a random draw: the loss's numbers and the
    global random stream are those of a loss that was not probed."""
    from torchrl_reg.modules.critics import state_action_value_network
    from torchrl_reg.objectives import MDACLoss

    def run(probe: bool):
        torch.manual_seed(0)
        loss = MDACLoss(tanh_normal_policy(3, Bounded(-1.0, 1.0, shape=(1,)), num_cells=[8]),
                        state_action_value_network(3, 1, num_cells=[8]))
        loss.__dict__["_networks_probed"] = not probe
        out = loss(box_batch(action_dim=1))
        return out["loss_qvalue"], out["loss_actor"], torch.rand(1)

    assert all(torch.equal(a, b) for a, b in zip(run(True), run(False)))


def test_a_critic_of_no_input_is_refused_when_built():
    from torchrl_reg.modules.critics import state_action_value_network

    with pytest.raises(ValueError, match=r"^state_action_value_network: observation_dim must be an integer >= 1, got "
                                         r"observation_dim=0 \(the number of input features it reads\)$"):
        state_action_value_network(0, 1)


def test_implicit_q_with_a_q_critic_names_the_state_value_critic_as_the_fix():
    from torchrl_reg.modules.critics import state_action_value_network

    actor = tanh_normal_policy(3, Bounded(-1.0, 1.0, shape=(1,)), num_cells=[8])
    with pytest.raises(TypeError) as info:
        ImplicitQLoss(actor, state_action_value_network(3, 1, num_cells=[8]))
    message = str(info.value)
    assert message.startswith("ImplicitQLoss: value_network must be a state-value module"), message
    assert "got one that reads 'action' (in_keys ['observation', 'action']), a Q(s, a) critic" in message
    assert message.endswith("Use torchrl_reg.modules.critics.state_value_network(observation_dim) (a ValueOperator "
                            "writing 'state_value')")
    assert "set_keys" not in message  # it said to rename keys


@pytest.mark.parametrize("reward_shape, flag_shape", [((16,), None), (None, (16,))])
def test_reward_and_flags_of_two_shapes_are_refused_naming_them(reward_shape, flag_shape):
    # "All input tensors (value, reward and done states) must share a unique shape", from TorchRL's estimator
    loss = MunchausenDQNLoss(identity_actor())
    td = box_batch(reward_shape=reward_shape, flag_shape=flag_shape).exclude("action")
    td["observation"], td["next", "observation"] = td["observation"][:, :2], td["next", "observation"][:, :2]
    td["action"] = torch.zeros(16, dtype=torch.long)
    r, f = ([16] if reward_shape else [16, 1]), ([16] if flag_shape else [16, 1])
    expected = (
        "MunchausenDQNLoss: the reward and the done / terminated flags must share one shape, [16] or [16, 1] (TorchRL's "
        f"envs write [16, 1]); got ('next', 'reward') {r}, ('next', 'done') {f}, ('next', 'terminated') {f}: reshape "
        "them alike (.unsqueeze(-1) or .squeeze(-1))"
    )
    with pytest.raises(ValueError) as info:
        loss(td)
    assert str(info.value) == expected


def test_a_priority_weight_of_another_shape_is_refused():
    # "shape '[2]' is invalid for input of size 4"
    batch = hand_batch()
    batch["priority_weight"] = torch.ones(2, 2)
    with pytest.raises(ValueError) as info:
        MunchausenDQNLoss(identity_actor())(batch)
    assert str(info.value) == ("MunchausenDQNLoss: 'priority_weight' must hold one weight per transition, shaped as the "
                               "batch [2] or [2, 1]; got shape [2, 2]")


def test_a_q_network_wider_than_the_spec_is_refused():
    # QValueActor(MLP(out_features=3), spec=Categorical(2)) trained a 3-action softmax over 2 actions, with no warning
    actor = QValueActor(nn.Linear(2, 3), in_keys=["observation"], spec=Categorical(2))
    with pytest.raises(ValueError) as info:
        MunchausenDQNLoss(actor)(hand_batch())
    assert str(info.value) == (
        "MunchausenDQNLoss: its value network writes 3 action values per state, but the action spec has n=2 actions: "
        "the loss's softmax and max would range over actions the env never takes; build the network with 2 outputs "
        "(out_features=2), or the spec with the network's 3"
    )


@pytest.mark.filterwarnings("ignore:.*VIRELLoss")
@pytest.mark.parametrize("name", ["MDACLoss", "VIRELLoss", "ImplicitQLoss", "SoftQLoss"])
def test_a_nan_action_fails_the_box_check(name):
    # nan < low and nan > high are both False: it passed, and loss_qvalue was nan
    from torchrl_reg.modules.critics import state_action_value_network
    from torchrl_reg.objectives import SoftQLoss

    box = Bounded(-1.0, 1.0, shape=(1,))
    actor = tanh_normal_policy(3, box, num_cells=[8])
    build = {**_box_losses(), "SoftQLoss": lambda actor, width: SoftQLoss(
        state_action_value_network(3, width, num_cells=[8]), action_spec=box)}
    loss = build[name](actor, 1)
    td = box_batch(action_dim=1)
    td["action"][3] = float("nan")
    with pytest.raises(ValueError) as info:
        loss(td)
    assert str(info.value) == (f"{name}: 'action' must be inside the action box [[-1.0], [1.0]]; first bad entry at "
                               "index [3, 0]: nan")


def test_soft_q_learning_with_its_two_parts_swapped_says_so():
    # KeyError: '_qvalue'
    from torchrl_reg.modules.critics import state_action_value_network
    from torchrl_reg.modules.soft_q import svgd_sampler_actor
    from torchrl_reg.objectives import SoftQLearningLoss, SoftQLoss, SVGDPolicyLoss

    box = Bounded(-1.0, 1.0, shape=(1,))
    qvalue = state_action_value_network(3, 1, num_cells=[8])
    critic = SoftQLoss(qvalue, action_spec=box)
    actor = SVGDPolicyLoss(svgd_sampler_actor(3, box, num_cells=[8]), qvalue)
    with pytest.raises(TypeError) as info:
        SoftQLearningLoss(actor, critic)
    assert str(info.value) == (
        "SoftQLearningLoss(critic, actor) takes a SoftQLoss, then an SVGDPolicyLoss; got SVGDPolicyLoss and SoftQLoss; "
        "are the two swapped? Pass SoftQLearningLoss(critic=SoftQLoss(...), actor=SVGDPolicyLoss(...))"
    )


def test_a_keyword_of_no_argument_proposes_no_other_knob():
    from torchrl_reg.modules.critics import state_action_value_network
    from torchrl_reg.objectives import VIRELLoss

    actor = tanh_normal_policy(3, Bounded(-1.0, 1.0, shape=(1,)), num_cells=[8])
    with pytest.raises(TypeError) as info:
        VIRELLoss(actor, state_action_value_network(3, 1, num_cells=[8]), delay_actor=False)
    message = str(info.value)
    assert message.startswith("VIRELLoss() got an unexpected keyword argument 'delay_actor': it accepts ["), message
    assert "did you mean" not in message  # it proposed delay_qvalue, another knob


@pytest.mark.parametrize("build, expected", [
    (lambda: MunchausenDQNLoss(identity_actor(), tau=0.0),
     "MunchausenDQNLoss: tau must be a finite number in [0.0001, 10.0], got tau=0.0"),
    (lambda: MunchausenDQNLoss(identity_actor(), reduction="avg"),
     "MunchausenDQNLoss: reduction must be one of ['none', 'mean', 'sum'], got reduction='avg'"),
    (lambda: IQNLoss(iqn_actor(Categorical(3))),
     "IQNLoss: the action spec has 3 actions, the ImplicitQuantileNetwork num_actions=2"),
])
def test_the_shared_validators_refusals_name_the_class(build, expected):
    with pytest.raises(ValueError) as info:
        build()
    assert str(info.value) == expected
