"""The same misuse cases against every registered loss, each built by its own recipe (:mod:`.registry_losses`).

Every row must end in a clear refusal that names the loss class (or, for soft Q-learning, the loss it holds that
refuses) and the fix, before any number is computed: no raw error from deep inside torch or TorchRL, and no silent
``inf`` or ``nan``. A loss registered by a recipe is covered without editing this file; a guard landed in one class
and not in its family's base shows up as failing rows for its siblings. :data:`NOT_APPLICABLE` is the one table of
the rows that do not apply, each with its reason.
"""
from __future__ import annotations

import re

import pytest
import torch
from torchrl.modules import MLP, Actor
from torchrl.objectives import DQNLoss, SACLoss

from tests.objectives.registry_losses import BOX, OBS, arguments_replaced, batch, build, cases, loss_names, registered
from torchrl_reg.validation import constructor_arguments

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
        "SoftQLearningLoss": "it takes its two losses, not networks; each refuses its own (test_soft_q.py)",
    },
    "one_dimensional_action": {"value_based": "an [N] action is the categorical encoding, accepted as [N, 1] is"},
    "network_writes_another_key": {
        "IQNLoss": "its quantile network is called directly and returns its quantiles, no key is read",
        "MunchausenIQNLoss": "its quantile network is called directly and returns its quantiles, no key is read",
    },
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
    )
}


@pytest.mark.parametrize("misuse", list(MISUSES))
@pytest.mark.parametrize("case", CASES, ids=_id)
def test_misuse_is_refused_naming_the_class_and_the_fix(case, misuse):
    _skip_unless_applies(misuse, case)
    MISUSES[misuse](case)
