"""The same misuse cases against every registered loss, each built by its own recipe (:mod:`.registry_losses`).

Every row must end in a clear refusal that names the loss class (or, for soft Q-learning, the loss it holds that
refuses) and the fix, before any number is computed: no raw error from deep inside torch or TorchRL, and no silent
``inf`` or ``nan``. A loss registered by a recipe is covered without editing this file; a guard landed in one class
and not in its family's base shows up as failing rows for its siblings. :data:`NOT_APPLICABLE` is the one table of
the rows that do not apply, each with its reason.
"""
from __future__ import annotations

import inspect
import math
import re

import pytest
import torch
from tensordict.nn import NormalParamExtractor, TensorDictModule
from torch.distributions import Normal
from torchrl.data import Categorical
from torchrl.modules import MLP, Actor, ProbabilisticActor, QValueActor
from torchrl.objectives import DQNLoss, SACLoss

from tests.objectives.registry_losses import (
    BOX, NUM_ACTIONS, OBS, arguments_replaced, batch, build, cases, config, loss_names, registered,
)
from torchrl_reg.modules.critics import state_action_value_network, state_value_network
from torchrl_reg.validation import ArgumentChecks, constructor_arguments

# The losses' own warnings of an undriven schedule (MIRL's prior and beta, VIREL's replay temperature).
pytestmark = [pytest.mark.filterwarnings("ignore:MIRLLoss"), pytest.mark.filterwarnings("ignore:.*VIRELLoss")]

CASES = cases()
#: TorchRL's own losses, registered as the baselines: their refusals are TorchRL's, not this library's to add.
TORCHRL = (DQNLoss, SACLoss)

#: misuse -> {loss class name or family: why the case does not apply}. A class name is matched before its family.
NOT_APPLICABLE: dict[str, dict[str, str]] = {
    "deterministic_actor": {
        "value_based": "no actor: the policy is the Q-network's greedy or Boltzmann one",
        "SoftQLearningLoss": "its actor is an SVGD sampler by design (a map of noise to actions, no density); "
        "SVGDPolicyLoss refuses anything else (test_soft_q.py)",
    },
    "swapped_networks": {
        "value_based": "one network, the Q-network",
        "SoftQLearningLoss": "it takes its two losses, not networks; each refuses its own (test_soft_q.py), and the two "
        "losses swapped are refused naming both (test_input_checks.py)",
    },
    "one_dimensional_action": {"value_based": "an [N] action is the categorical encoding, accepted as [N, 1] is"},
    "network_writes_another_key": {
        "IQNLoss": "its quantile network is called directly and returns its quantiles, no key is read",
        "MunchausenIQNLoss": "its quantile network is called directly and returns its quantiles, no key is read",
    },
    "nan_action": {"value_based": "a discrete action is an integer index (a float one is refused by its dtype)"},
    "log_prob_per_dimension": {
        "value_based": "no actor: the policy is the Q-network's greedy or Boltzmann one",
        "SoftQLearningLoss": "its actor is an SVGD sampler by design (a map of noise to actions, no density)",
    },
    "critic_for_another_width": {
        "value_based": "one network, the Q-network: its width against the spec is q_outputs_against_n",
        "SoftQLearningLoss": "it takes its two losses, not networks: SoftQLoss's critic is probed as MDAC's "
        "(test_input_checks.py), and the sampler loss refuses another critic than the SoftQLoss trains",
    },
    "q_outputs_against_n": {"actor_critic": "no Q-network over a discrete spec: the critic is probed instead"},
}


def _id(case) -> str:
    return case.id


def _applies(misuse: str, loss_class: type, family: str) -> str | None:
    """The reason ``misuse`` does not apply to the loss, or ``None``."""
    if issubclass(loss_class, TORCHRL):
        return f"{loss_class.__name__} is TorchRL's own loss (the baseline): its refusals are TorchRL's"
    table = NOT_APPLICABLE.get(misuse, {})
    return table.get(loss_class.__name__, table.get(family))


def _skip_unless_applies(misuse: str, case) -> None:
    reason = _applies(misuse, case.entry.loss_class, case.family)
    if reason is not None:
        pytest.skip(f"{misuse} does not apply to {case.id}: {reason}")


def _refused(loss_or_names, call, fix: str, errors=(TypeError, ValueError, KeyError)) -> str:
    """Run ``call``; it must raise one of ``errors`` naming a class of ``loss_or_names`` and containing ``fix``."""
    names = loss_or_names if isinstance(loss_or_names, set) else loss_names(loss_or_names)
    with pytest.raises(errors) as info:
        call()
    message = str(info.value)
    assert any(name in message for name in names), f"the refusal names none of {sorted(names)}: {message}"
    assert fix in message, f"the refusal does not say {fix!r}: {message}"
    return message


def test_every_registered_loss_is_in_the_battery():
    """The battery's rows are the registry's entries (what the training recipes register), no more, no fewer."""
    assert {(case.family, case.name) for case in CASES} == registered()


def test_the_table_names_only_known_misuses_and_classes():
    classes = {case.entry.loss_class.__name__ for case in CASES} | {"value_based", "actor_critic"}
    for misuse, rows in NOT_APPLICABLE.items():
        assert misuse in MISUSES, misuse
        assert set(rows) <= classes, (misuse, set(rows) - classes)


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_a_valid_batch_trains(case):
    """The control: each built loss runs on the battery's valid batch and gives finite terms."""
    loss, act = build(case)
    out = loss(batch(act))
    terms = [key for key in out.keys() if key.startswith("loss")]
    assert terms and all(torch.isfinite(out[key]).all() for key in terms), case.id


# -- the misuses -----------------------------------------------------------------------------------------------------


def deterministic_actor(case) -> None:
    """TorchRL's deterministic ``Actor`` (its get_dist a Delta) as the actor: refused when the loss is built (it gave
    loss_actor = inf in VIREL and loss = nan in IQ, and an optimizer step ran)."""
    cls = case.entry.loss_class
    argument = getattr(cls, "actor_argument", None)
    assert argument, f"{cls.__name__} has an actor: declare actor_argument (ActorCriticLossBase) so its guards run"

    def deterministic(arguments):
        arguments[argument] = Actor(MLP(in_features=OBS, out_features=BOX.shape[-1], num_cells=[8]), spec=BOX)

    with arguments_replaced(cls, deterministic):
        _refused({cls.__name__}, lambda: build(case), "tanh_normal_policy")


def swapped_networks(case) -> None:
    """The critic passed as the actor and the actor as the critic."""
    cls = case.entry.loss_class
    actor, critic = getattr(cls, "actor_argument", None), getattr(cls, "critic_argument", None)
    assert actor and critic, f"{cls.__name__}: declare actor_argument and critic_argument (ActorCriticLossBase)"

    def swap(arguments):
        arguments[actor], arguments[critic] = arguments[critic], arguments[actor]

    with arguments_replaced(cls, swap):
        _refused({cls.__name__}, lambda: build(case), "swapped")


def one_dimensional_action(case) -> None:
    """An ``[N]`` action of a one-dimensional Box (``[N, 1]`` expected): it broadcast against ``[N, 1]`` values."""
    loss, act = build(case)
    td = batch(act)
    td["action"] = td["action"].squeeze(-1)
    _refused(loss, lambda: loss(td), "unsqueeze(-1)")


def empty_batch(case) -> None:
    """A batch of no transition (it failed inside aminmax, or in a reshape of 0 elements)."""
    loss, act = build(case)
    _refused(loss, lambda: loss(batch(act)[:0]), "empty batch")


def missing_key(case) -> None:
    """The observation under another key than the networks read."""
    loss, act = build(case)
    td = batch(act)
    td.rename_key_("observation", "obs")
    _refused(loss, lambda: loss(td), "set_keys")


def network_writes_another_key(case) -> None:
    """A network that writes another key than the loss reads from it (``'NoneType' object has no attribute
    'squeeze'`` in MDAC): the loss's key renamed, the network left writing its own."""
    loss, act = build(case)
    owners = [module for module in loss.modules() if getattr(module, "network_outputs", None)]
    assert owners, f"{type(loss).__name__}: declare network_outputs (the key each network writes) so the guard runs"
    for owner in owners:
        for field in owner.network_outputs.values():
            owner.set_keys(**{field: "another_key"})
    _refused(loss, lambda: loss(batch(act)), "set_keys(")


def float64_batch(case) -> None:
    """Observations (and continuous actions) in float64 against float32 networks."""
    loss, act = build(case)
    td = batch(act).apply(lambda t: t.double() if t.is_floating_point() else t)
    _refused(loss, lambda: loss(td), "torch.float64")


def nan_with_check_finite(case) -> None:
    """A NaN observation with ``check_finite=True``: refused naming the key and its index."""
    loss, act = build(case)
    for module in loss.modules():
        if hasattr(module, "check_finite"):
            module.check_finite = True
    td = batch(act)
    td["next", "observation"][1, 0] = float("nan")
    _refused(loss, lambda: loss(td), "finite")


def unknown_keyword(case) -> None:
    """A misspelled constructor keyword (``betta=``): a TypeError naming the class and the keyword meant."""
    cls = case.entry.loss_class
    accepted = sorted(name for name in constructor_arguments(cls) if len(name) >= 4)
    assert accepted, cls.__name__
    meant = accepted[0]
    typo = meant[:3] + meant[2] + meant[3:]  # beta -> betta
    message = _refused({cls.__name__}, lambda: cls(**{typo: None}), f"did you mean {meant!r}", errors=(TypeError,))
    assert re.search(rf"unexpected keyword argument '{typo}'", message), message


def nan_action(case) -> None:
    """A NaN action: it passed the "inside the action box" test (``nan < low`` and ``nan > high`` are both False), and
    the critic's loss was nan."""
    loss, act = build(case)
    td = batch(act)
    td["action"][1] = float("nan")
    _refused(loss, lambda: loss(td), "inside the action box")


def reward_and_flag_shapes(case) -> None:
    """A reward ``[N]`` beside done / terminated flags ``[N, 1]``, and the reverse (TorchRL's estimator failed with
    "All input tensors ... must share a unique shape", no key named)."""
    loss, act = build(case)
    td = batch(act)
    td["next", "reward"] = td["next", "reward"].squeeze(-1)
    _refused(loss, lambda: loss(td), "must share one shape")
    loss, act = build(case)
    td = batch(act)
    for flag in ("done", "terminated"):
        td["next", flag] = td["next", flag].squeeze(-1)
    _refused(loss, lambda: loss(td), "must share one shape")


def priority_weight_shape(case) -> None:
    """A ``priority_weight`` of shape ``[N, 2]`` (``shape '[N]' is invalid for input of size 2N``)."""
    loss, act = build(case)
    td = batch(act)
    td["priority_weight"] = torch.ones(td.shape[0], 2)
    _refused(loss, lambda: loss(td), "one weight per transition")


def _normal_actor(case) -> ProbabilisticActor:
    """A ``ProbabilisticActor(distribution_class=Normal)``: its log_prob is per action dimension (no Independent)."""
    dim = case.box.shape[-1]
    net = torch.nn.Sequential(MLP(in_features=OBS, out_features=2 * dim, num_cells=[8]), NormalParamExtractor())
    module = TensorDictModule(net, in_keys=["observation"], out_keys=["loc", "scale"])
    return ProbabilisticActor(module, in_keys=["loc", "scale"], spec=case.box, distribution_class=Normal)


def log_prob_per_dimension(case) -> None:
    """A Normal actor not wrapped in Independent: one log-density per action dimension, broadcast against the batch's
    values (``The size of tensor a (16) must match the size of tensor b (2)`` on a 2-D Box). Refused on the first
    batch, naming IndependentNormal and tanh_normal_policy."""
    cls = case.entry.loss_class
    argument = cls.actor_argument

    def normal(arguments):
        arguments[argument] = _normal_actor(case)

    with arguments_replaced(cls, normal):
        loss, act = build(case)
    td = batch(act)
    message = _refused(loss, lambda: loss(td), "IndependentNormal")
    assert "tanh_normal_policy" in message, message


def critic_for_another_width(case) -> None:
    """A critic built for another input width (``state_action_value_network(3, 2)`` on a one-dimensional Box;
    ``state_value_network(OBS + 1)`` for a V(s) critic): it failed inside its first matmul (``Expected size for first
    two dimensions of batch2 tensor ...``). Refused on the first batch, naming the inputs and the widths."""
    cls = case.entry.loss_class
    argument = cls.critic_argument
    reads_action = not cls.state_value_critic

    def wider(arguments):
        critic = arguments[argument]
        arguments[argument] = (
            state_action_value_network(OBS, case.box.shape[-1] + 1, num_cells=[8]) if reads_action
            else state_value_network(OBS + 1, num_cells=[8])
        )
        assert type(arguments[argument]) is type(critic) or reads_action, critic

    with arguments_replaced(cls, wider):
        loss, act = build(case)
    message = _refused(loss, lambda: loss(batch(act)), "input features")
    assert "one transition's inputs" in message, message


def q_outputs_against_n(case) -> None:
    """A Q-network with more outputs than the action spec's ``n`` (``QValueActor(MLP(out_features=3),
    spec=Categorical(2))``): the softmax over 3 actions trained on 2, without a word."""
    from torchrl_reg.loops.value_based import q_network

    entry, cfg = case.entry, config(case)
    network = (entry.network or q_network)(cfg, (OBS,), NUM_ACTIONS + 1)
    actor = QValueActor(network, in_keys=["observation"], spec=Categorical(NUM_ACTIONS))

    def run():
        loss = entry.from_config(cfg, actor)
        loss(batch(lambda td: td.set("action", torch.randint(0, NUM_ACTIONS, td.batch_size))))

    message = _refused({entry.loss_class.__name__}, run, f"{NUM_ACTIONS}")
    assert f"{NUM_ACTIONS + 1}" in message and "action" in message, message


def a_different_knob_is_not_proposed(case) -> None:
    """A keyword that is no misspelling of an argument (``delay_everything``; ``VIRELLoss(delay_actor=False)``): the refusal lists what is
    accepted and proposes nothing (it proposed ``delay_qvalue``, a different knob)."""
    cls = case.entry.loss_class
    message = _refused({cls.__name__}, lambda: cls(delay_everything=False), "it accepts", errors=(TypeError,))
    assert "did you mean" not in message, message


def _checked_arguments(cls: type) -> list[str]:
    """The constructor arguments of ``cls`` that an :class:`ArgumentChecks` class on its MRO checks."""
    accepted = constructor_arguments(cls)
    keys = [key for klass in cls.__mro__ if issubclass(klass, ArgumentChecks) for key in vars(klass).get("argument_checks", {})]
    return [key for key in dict.fromkeys(keys) if key in accepted]


def argument_refusals_name_the_class(case) -> None:
    """Every argument the shared validators check, given NaN where the recipe builds the loss: each refusal names the
    class (``MunchausenDQNLoss: tau must be ...``; the validator's words alone named only the argument) and the
    argument."""
    cls = case.entry.loss_class
    keys = _checked_arguments(cls)
    signature = inspect.signature(cls.__dict__["__init__"])
    var_keyword = next((p.name for p in signature.parameters.values() if p.kind is p.VAR_KEYWORD), None)
    refused = []
    for key in keys:

        def nan(arguments, key=key):
            if key in signature.parameters:
                arguments[key] = math.nan
            else:
                arguments.setdefault(var_keyword, {})[key] = math.nan

        with arguments_replaced(cls, nan):
            try:
                build(case)
            except (ValueError, TypeError) as err:
                message = str(err)
                assert message.startswith(f"{cls.__name__}") and key in message, message
                refused.append(key)
    assert refused == keys, f"{cls.__name__} took NaN for {sorted(set(keys) - set(refused))}"


MISUSES = {
    fn.__name__: fn
    for fn in (
        deterministic_actor,
        swapped_networks,
        one_dimensional_action,
        empty_batch,
        missing_key,
        network_writes_another_key,
        float64_batch,
        nan_with_check_finite,
        unknown_keyword,
        nan_action,
        reward_and_flag_shapes,
        priority_weight_shape,
        log_prob_per_dimension,
        critic_for_another_width,
        q_outputs_against_n,
        a_different_knob_is_not_proposed,
        argument_refusals_name_the_class,
    )
}


@pytest.mark.parametrize("misuse", list(MISUSES))
@pytest.mark.parametrize("case", CASES, ids=_id)
def test_misuse_is_refused_naming_the_class_and_the_fix(case, misuse):
    _skip_unless_applies(misuse, case)
    MISUSES[misuse](case)
