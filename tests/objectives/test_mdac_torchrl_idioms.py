"""MDACLoss in TorchRL's own SAC idioms, unchanged but for the loss class, on Pendulum-v1 with TorchRL's collector
and replay buffer.

* TorchRL's SAC example (``sota-implementations/sac``): one Adam per term over ``actor_network_params``,
  ``qvalue_network_params`` and ``[log_alpha]``, grouped by ``group_optimizers``, the update summing
  ``loss_actor + loss_qvalue + loss_alpha``, a ``SoftUpdate`` of the target critics; and the older form of the
  same example, a backward and a step per term.
* TorchRL's sota SAC ``make_loss_module`` (``delay_actor=False``, ``delay_qvalue=True``, ``SoftUpdate``), verbatim.
* The generic sum of the ``loss_*`` entries (what TorchRL's trainers and our ``make_update`` differentiate).

The same function runs SACLoss (the control) and MDACLoss. The checks: each term's gradient reaches only its own
parameters, and the three-optimizer step equals one Adam over ``loss.parameters()`` stepping the sum (Adam is
per parameter) and the fused update of ``make_update``.
"""
from __future__ import annotations

import types

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule
from torch import nn
from torchrl.collectors import Collector
from torchrl.data import Categorical, LazyTensorStorage, ReplayBuffer
from torchrl.envs import GymEnv
from torchrl.modules import ProbabilisticActor
from torchrl.objectives import SACLoss, SoftUpdate, group_optimizers

from torchrl_reg.modules.critics import state_action_value_network
from torchrl_reg.modules.policies import tanh_normal_policy
from torchrl_reg.objectives import FusedAdamUpdate, MDACLoss, make_update

LR = 3e-4
TERMS = ("loss_actor", "loss_qvalue", "loss_alpha")


def _pendulum_batches(num_batches: int, batch_size: int = 32) -> list[TensorDict]:
    """Transitions of a real Pendulum-v1 collected by TorchRL's collector (random policy), sampled from TorchRL's
    replay buffer."""
    torch.manual_seed(0)
    env = GymEnv("Pendulum-v1")
    env.set_seed(0)
    collector = Collector(env, policy=None, frames_per_batch=128, total_frames=128)
    buffer = ReplayBuffer(storage=LazyTensorStorage(128), batch_size=batch_size)
    for data in collector:
        buffer.extend(data.reshape(-1))
    collector.shutdown()
    return [buffer.sample().clone() for _ in range(num_batches)]


def _networks(seed: int = 0):
    torch.manual_seed(seed)
    spec = GymEnv("Pendulum-v1").action_spec_unbatched
    return tanh_normal_policy(3, spec, num_cells=(16,)), state_action_value_network(3, 1, num_cells=(16,))


def _loss(cls):
    actor, qvalue = _networks()
    loss = cls(actor, qvalue, num_qvalue_nets=2, loss_function="l2")
    loss.make_value_estimator(gamma=0.99)
    return loss


def _sac_example_optimizers(loss_module):
    """TorchRL's SAC example's ``make_sac_optimizer``: one Adam per term."""
    critic_params = list(loss_module.qvalue_network_params.flatten_keys().values())
    actor_params = list(loss_module.actor_network_params.flatten_keys().values())
    optimizer_actor = torch.optim.Adam(actor_params, lr=LR)
    optimizer_critic = torch.optim.Adam(critic_params, lr=LR)
    optimizer_alpha = torch.optim.Adam([loss_module.log_alpha], lr=LR)
    return optimizer_actor, optimizer_critic, optimizer_alpha


def _sac_example_update(loss_module, optimizer, target_net_updater):
    """TorchRL's SAC example's ``update`` (grouped optimizers, the three terms summed)."""

    def update(sampled_tensordict):
        loss_td = loss_module(sampled_tensordict)
        actor_loss = loss_td["loss_actor"]
        q_loss = loss_td["loss_qvalue"]
        alpha_loss = loss_td["loss_alpha"]
        (actor_loss + q_loss + alpha_loss).sum().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        target_net_updater.step()
        return loss_td.detach()

    return update


def _params(loss) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in loss.named_parameters()}


@pytest.mark.parametrize("cls", [SACLoss, MDACLoss])
def test_torchrl_sac_example_update_runs_unchanged(cls):
    batches = _pendulum_batches(6)
    loss_module = _loss(cls)
    optimizer = group_optimizers(*_sac_example_optimizers(loss_module))
    update = _sac_example_update(loss_module, optimizer, SoftUpdate(loss_module, eps=0.995))
    before = _params(loss_module)
    target_before = loss_module.target_qvalue_network_params.clone()
    for batch in batches:
        loss_td = update(batch)
        assert set(TERMS) <= set(loss_td.keys()) and {"alpha", "entropy"} <= set(loss_td.keys())
        assert all(torch.isfinite(loss_td[key]) for key in TERMS)
    after = _params(loss_module)
    assert all(not torch.equal(before[name], after[name]) for name in before), "every parameter moves"
    assert not torch.equal(target_before["module", "0", "weight"], loss_module.target_qvalue_network_params["module", "0", "weight"])


def _sota_make_loss_module(SACLoss, cfg, model):  # noqa: N803 (the class it is handed, under TorchRL's name)
    """TorchRL's ``sota-implementations/sac/utils.py`` ``make_loss_module``, verbatim but for the class it builds."""
    # Create SAC loss
    loss_module = SACLoss(
        actor_network=model[0],
        qvalue_network=model[1],
        num_qvalue_nets=2,
        loss_function=cfg.optim.loss_function,
        delay_actor=False,
        delay_qvalue=True,
        alpha_init=cfg.optim.alpha_init,
    )
    loss_module.make_value_estimator(gamma=cfg.optim.gamma)

    # Define Target Network Updater
    target_net_updater = SoftUpdate(loss_module, eps=cfg.optim.target_update_polyak)
    return loss_module, target_net_updater


#: The options of TorchRL's SAC example's config that ``make_loss_module`` reads (its config.yaml's defaults).
SOTA_CFG = types.SimpleNamespace(
    optim=types.SimpleNamespace(loss_function="l2", alpha_init=1.0, gamma=0.99, target_update_polyak=0.995)
)


@pytest.mark.parametrize("cls", [SACLoss, MDACLoss])
def test_torchrl_sota_make_loss_module_runs_unchanged(cls):
    """TorchRL's sota SAC builds its loss with ``delay_actor=False`` (no target actor), which MDACLoss accepts: its
    target samples from the current actor, as SAC's does. The loss it builds takes the example's update."""
    loss_module, target_net_updater = _sota_make_loss_module(cls, SOTA_CFG, _networks())
    assert loss_module.delay_qvalue and not getattr(loss_module, "delay_actor", False)
    assert "target_actor_network_params" not in dict(loss_module.named_modules())
    optimizer = group_optimizers(*_sac_example_optimizers(loss_module))
    update = _sac_example_update(loss_module, optimizer, target_net_updater)
    for batch in _pendulum_batches(2):
        loss_td = update(batch)
        assert all(torch.isfinite(loss_td[key]) for key in TERMS)


def test_a_target_actor_is_refused_with_the_reason():
    actor, qvalue = _networks()
    with pytest.raises(ValueError, match="delay_actor=True asks for a target actor, and MDACLoss has none.*current actor"):
        MDACLoss(actor_network=actor, qvalue_network=qvalue, delay_actor=True)


@pytest.mark.parametrize("keyword, meant", [("betta", "beta"), ("alpha_int", "alpha_init")])
def test_a_misspelled_keyword_names_the_class_and_the_keyword_meant(keyword, meant):
    actor, qvalue = _networks()
    with pytest.raises(TypeError, match=f"MDACLoss\\(\\) got an unexpected keyword argument '{keyword}': did you mean '{meant}'"):
        MDACLoss(actor, qvalue, **{keyword: 0.5})
    with pytest.raises(TypeError, match="MDACLoss.*'gama'.*make_value_estimator\\(gamma="):
        MDACLoss(actor, qvalue, gama=0.99)  # the discount lives in the value estimator


@pytest.mark.parametrize("cls", [SACLoss, MDACLoss])
def test_each_term_reaches_only_its_own_parameters(cls):
    batch = _pendulum_batches(1)[0]
    loss_module = _loss(cls)
    groups = {
        "loss_actor": set(loss_module.actor_network_params.flatten_keys().keys()),
        "loss_qvalue": set(loss_module.qvalue_network_params.flatten_keys().keys()),
    }
    out = loss_module(batch)
    for term in TERMS:
        assert out[term].requires_grad, term
    actor = [p for p in loss_module.actor_network_params.flatten_keys().values()]
    critic = [p for p in loss_module.qvalue_network_params.flatten_keys().values()]
    everything = [*actor, *critic, loss_module.log_alpha]
    for term, own in (("loss_actor", actor), ("loss_qvalue", critic), ("loss_alpha", [loss_module.log_alpha])):
        grads = torch.autograd.grad(out[term], everything, retain_graph=True, allow_unused=True)
        owned = {id(p) for p in own}
        for p, g in zip(everything, grads):
            if id(p) in owned:
                assert g is not None and g.abs().sum() > 0, term
            else:
                assert g is None or not g.any(), (term, "touches another term's parameters")
    assert groups  # the parameter groups of the SAC example are the loss's own


def test_one_optimizer_per_term_equals_one_adam_over_the_sum_and_the_generic_sum_of_loss_keys():
    batches = _pendulum_batches(5)
    # TorchRL's older SAC example: a backward and a step per term.
    per_term = _loss(MDACLoss)
    optimizers = _sac_example_optimizers(per_term)
    # The generic idiom: the sum of every loss_* entry, one Adam over loss.parameters().
    summed = _loss(MDACLoss)
    adam = torch.optim.Adam(summed.parameters(), lr=LR)
    # make_update's eager step (the recipes' loop, one Adam over the sum).
    looped = _loss(MDACLoss)
    step = make_update(looped, torch.optim.Adam(looped.parameters(), lr=LR), max_grad_norm=None, compile=False)
    for i, batch in enumerate(batches):
        torch.manual_seed(100 + i)  # the same reparametrized draws for the three
        out = per_term(batch.clone())
        for term, optimizer in zip(("loss_actor", "loss_qvalue", "loss_alpha"), optimizers):
            optimizer.zero_grad()
            out[term].backward()
            optimizer.step()
        torch.manual_seed(100 + i)
        out = summed(batch.clone())
        adam.zero_grad()
        sum(v for k, v in out.items() if k.startswith("loss_")).backward()
        adam.step()
        torch.manual_seed(100 + i)
        step(batch.clone())
    reference = _params(per_term)
    for loss in (summed, looped):
        for name, value in _params(loss).items():
            torch.testing.assert_close(value, reference[name], rtol=1e-6, atol=1e-7)


class _Table(nn.Module):
    def __init__(self, rows: int, cols: int, seed: int):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.table = nn.Parameter(torch.randn(rows, cols, generator=g, dtype=torch.float64))

    def forward(self, observation: torch.Tensor, action: torch.Tensor | None = None) -> torch.Tensor:
        values = observation @ self.table
        return values if action is None else values.gather(-1, action.long().unsqueeze(-1))


def _tabular_mdac() -> MDACLoss:
    """A categorical actor (exact expectations: no random draws, so eager and compiled agree) over 3 actions."""
    torch.manual_seed(0)  # the second critic's initialization
    actor = ProbabilisticActor(
        TensorDictModule(_Table(4, 3, 1), in_keys=["observation"], out_keys=["logits"]),
        in_keys=["logits"], distribution_class=torch.distributions.Categorical, spec=Categorical(3),
    )
    critic = TensorDictModule(_Table(4, 3, 2), in_keys=["observation", "action"], out_keys=["state_action_value"])
    loss = MDACLoss(actor, critic, target_entropy=0.5, alpha_init=0.5, bound_successor="clip", bound_current_scale=2.0)
    loss.make_value_estimator(gamma=0.9)
    return loss


def _tabular_batch(g: torch.Generator, n: int = 16) -> TensorDict:
    eye = torch.eye(4, dtype=torch.float64)
    s, s_next = torch.randint(0, 4, (n,), generator=g), torch.randint(0, 4, (n,), generator=g)
    return TensorDict(
        {
            "observation": eye[s], "action": torch.randint(0, 3, (n,), generator=g),
            ("next", "observation"): eye[s_next], ("next", "reward"): torch.randn(n, 1, generator=g, dtype=torch.float64),
            ("next", "done"): torch.zeros(n, 1, dtype=torch.bool), ("next", "terminated"): torch.rand(n, 1, generator=g) < 0.2,
        },
        [n],
    )


def test_fused_update_returns_the_terms_and_steps_as_the_eager_sum():
    """The fused step (``torch.func.grad`` of the sum, Adam on the optimizer's state) run uncompiled: the function
    that ``make_update(..., compile=True)`` compiles. The compiled graph is checked against the eager update below
    (and on a GPU by benchmarks/gpu_check.py, whose smoke runs include MDAC compiled)."""
    g = torch.Generator().manual_seed(3)
    batches = [_tabular_batch(g) for _ in range(3)]
    eager_loss, fused_loss = _tabular_mdac(), _tabular_mdac()
    eager = make_update(eager_loss, torch.optim.Adam(eager_loss.parameters(), lr=1e-2), max_grad_norm=None, compile=False)
    assert FusedAdamUpdate.unsupported_reason(fused_loss, torch.optim.Adam(fused_loss.parameters())) is None
    fused = FusedAdamUpdate(fused_loss, torch.optim.Adam(fused_loss.parameters(), lr=1e-2), max_grad_norm=None)
    fused._step = types.MethodType(FusedAdamUpdate._fused_step, fused)
    for i in range(4):
        out_eager, out_fused = eager(batches[i % 3].clone()), fused(batches[i % 3].clone())
        assert set(out_fused.keys()) == set(out_eager.keys()) == set(eager_loss.out_keys)
        for key in out_eager.keys():
            torch.testing.assert_close(out_fused[key], out_eager[key], rtol=1e-10, atol=1e-12)
    for (name, a), b in zip(fused_loss.named_parameters(), eager_loss.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12, msg=name)


def test_compiled_fused_update_returns_the_terms_and_steps_as_the_eager_sum():
    """``make_update(..., compile=True)``: the compiled fused graph against TorchRL's eager backward of the summed
    ``loss_*`` terms, in float64 over 6 steps (every output key and every parameter to 1e-10). On the tabular
    actor the compile takes some 10 s of one CPU core."""
    g = torch.Generator().manual_seed(3)
    batches = [_tabular_batch(g) for _ in range(3)]
    eager_loss, fused_loss = _tabular_mdac(), _tabular_mdac()
    eager = make_update(eager_loss, torch.optim.Adam(eager_loss.parameters(), lr=1e-2), max_grad_norm=None, compile=False)
    fused = make_update(fused_loss, torch.optim.Adam(fused_loss.parameters(), lr=1e-2), max_grad_norm=None, compile=True)
    assert isinstance(fused, FusedAdamUpdate)
    for i in range(6):
        out_eager, out_fused = eager(batches[i % 3].clone()), fused(batches[i % 3].clone())
        assert set(out_fused.keys()) == set(out_eager.keys()) == set(eager_loss.out_keys)
        for key in out_eager.keys():
            torch.testing.assert_close(out_fused[key], out_eager[key], rtol=1e-10, atol=1e-12, msg=key)
    for (name, a), b in zip(fused_loss.named_parameters(), eager_loss.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12, msg=name)
