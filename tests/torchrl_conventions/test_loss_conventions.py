"""TorchRL's generic LossModule properties over every loss of the library.

The properties are those TorchRL's own test suite checks on its losses (keys and ``set_keys``
reaching the estimator, keyword-tensor calls, reductions, batch dimensions, frozen and unaliased
target parameters, losses without targets, ``state_dict``/``deepcopy`` round trips,
``reset_parameters_recursive``, ``out_keys``, prioritized weighting, ``torch.compile``, ``vmap``),
written against TorchRL's ``DQNLoss`` and ``SACLoss`` too (registered as baselines), as controls. Where TorchRL's
own loss fails a property, the case is marked ``xfail`` with the reason. Also covered: single transitions
(``batch_size=()``), TorchRL's padding mask, and the misuse cases: integer flags and out-of-space actions through
every entry point.

The losses are read from the registry, each built small by its own recipe's ``from_config``
(tests/objectives/registry_losses.py), with the losses each holds (soft Q-learning's critic and sampler) and the
variants in :data:`VARIANTS`: a loss a recipe registers gets every property with no list to extend, and one that
cannot be built fails the collection. What a property needs to know of a loss is read from it (TorchRL's or the
library's, reads a reward, has a pure ``loss_and_outputs``, draws random numbers, its ``delay_*`` arguments); the
few exceptions that cannot be read are the short tables below, each with its reason, and a loss missing from one
fails the property it would have been excused from.
"""
from __future__ import annotations

import copy
import dataclasses
import inspect
import math
import warnings
from contextlib import ExitStack
from functools import cache

import pytest
import torch
from omegaconf import OmegaConf
from tensordict import TensorDict
from torchrl.objectives import DQNLoss, LossModule, SACLoss

from tests.objectives import registry_losses
from tests.objectives.registry_losses import B, NUM_ACTIONS as A, Case, arguments_replaced
from tests.recipes.recipe_cases import recipe
from torchrl_reg.objectives import DiscreteVIRELLoss, ImplicitQLoss, IQNLoss, SoftQLearningLoss, SoftQLoss, SVGDPolicyLoss
from torchrl_reg.validation import constructor_arguments

# The losses' own warnings of an undriven schedule (MIRL's prior and beta, VIREL's replay temperature):
# these tests call forward alone on purpose; test_virel_warns_when_its_replay_temperature_is_never_driven
# checks the VIREL one.
pytestmark = [pytest.mark.filterwarnings("ignore:MIRLLoss"), pytest.mark.filterwarnings("ignore:.*VIRELLoss")]

# -- the losses: every registry entry, built by its recipe (tests/objectives/registry_losses.py), the losses each
# holds, and the variants below; a loss a recipe registers gets every property test with no list to extend.

#: Variants of a registry entry that are not entries themselves (another option of the recipe's config, or a Box of
#: two dimensions), each with the reason it is checked apart from its entry.
VIREL_EM = Case("virel", "actor_critic", "virel", ("loss=virel_em",))
SQL_UNIFORM = Case("sql", "actor_critic", "sql", ("loss.proposal=uniform",), action_dim=2)
IQ_GAUSSIAN = Case("iq", "actor_critic", "implicit_q", ("loss=m_iq", "policy=gaussian"), action_dim=2)
VARIANTS: dict[Case, str] = {
    VIREL_EM: "VIRELLoss(variant='em'): the paper's E- and M-steps, a critic loss that is a product of batch means",
    SQL_UNIFORM: "SoftQLoss's default proposal, the reference's uniform one (the recipe sets loss.proposal=mixture), "
    "and soft Q-learning's particles on a 2-dimensional Box",
    IQ_GAUSSIAN: "ImplicitQLoss's defaults (alpha=0.9, m_iq; the registry's case is loss=iq, alpha 0) on a tanh-Gaussian "
    "policy (policy=gaussian), whose entropy has no closed form: forward draws a random action for its estimate; "
    "on a 2-dimensional Box",
}
#: The registry's Box is one-dimensional (Pendulum's shape): each other actor-critic entry of the library's own losses
#: runs on a 2-dimensional Box too, where a sum or mean over the action's dimensions can go wrong (TorchRL's SACLoss,
#: a control, stays on the registry's Box).
BOX_2D = "the entry on a 2-dimensional Box (the registry's is one-dimensional)"
LIBRARY_ACTOR_CRITIC = [
    case for case in registry_losses.cases()
    if case.family == "actor_critic" and case.entry.loss_class.__module__.startswith("torchrl_reg.")
]
VARIANTS.update({
    dataclasses.replace(case, action_dim=2): BOX_2D
    for case in LIBRARY_ACTOR_CRITIC
    if not any((v.recipe, v.name, v.action_dim) == (case.recipe, case.name, 2) for v in VARIANTS)
})


def _reference_builds() -> dict[str, tuple[Case, str, LossModule, object]]:
    """id -> ``(case, part, loss, act)``: each case's loss, and each loss it holds (soft Q-learning's critic and
    sampler: ``<case id>.<attribute>``), built once (never run) to read what it is; a case that cannot be built
    fails the collection with its error."""
    found = {}
    for case in [*registry_losses.cases(), *VARIANTS]:
        loss, act = registry_losses.build(case)
        for part, module in loss.named_modules():
            if isinstance(module, LossModule):
                found[case.id + (f".{part}" if part else "")] = (case, part, module, act)
    return found


LOSSES = _reference_builds()
ALL = list(LOSSES)
#: The library's losses; TorchRL's own (its DQNLoss and SACLoss, registered as baselines) are the controls.
OURS = [n for n in ALL if type(LOSSES[n][2]).__module__.startswith("torchrl_reg.")]
#: Losses that read states only (SVGDPolicyLoss): no reward, so no value estimator, no target, no TD-error priority.
STATES_ONLY = [n for n in ALL if ("next", "reward") not in LOSSES[n][2].in_keys]
#: Losses with a pure ``loss_and_outputs(batch, params)`` (not those with two loss terms or a temperature updated in
#: forward, nor TorchRL's).
PURE = [n for n in ALL if callable(getattr(LOSSES[n][2], "loss_and_outputs", None))]
#: Losses that refuse reduction="none", with the reason (VIRELLoss(variant="em"): tested in test_virel.py).
MEAN_ONLY = {VIREL_EM.id: "a product of batch means"}
PER_SAMPLE = [n for n in ALL if n not in MEAN_ONLY]
#: The VIREL losses (a Bellman-residual temperature); the registry entries among them.
TEMPERATURE = [n for n in ALL if hasattr(LOSSES[n][2], "update_temperature")]
TEMPERATURE_ENTRIES = [n for n in TEMPERATURE if LOSSES[n][0] not in VARIANTS and not LOSSES[n][1]]
#: Actor-critic entries whose actions are drawn by TanhNormal.rsample in place, as TorchRL's SACLoss: vmap's per-batch
#: randomness refuses them (TorchRL's SACLoss fails too), in every case of the entry (its variants too).
IN_PLACE_SAMPLING_ENTRIES = ("mdac", "sac", "virel")  # a choice, not the registry's list: the entries that sample in place
IN_PLACE_SAMPLING = [
    n for n in ALL if LOSSES[n][0].family == "actor_critic" and LOSSES[n][0].name in IN_PLACE_SAMPLING_ENTRIES
]
#: Losses whose random draws do not depend on the batch (IQN's quantile fractions, soft Q-learning's value
#: particles): vmapped with randomness="same".
BATCH_INDEPENDENT_DRAWS = (IQNLoss, SoftQLoss)
#: torch.compile is slow to trace: one loss per loop family.
COMPILED = ("value_based:m_dqn", "actor_critic:implicit_q")


def _ids_of(cls: type) -> list[str]:
    """The ids of the registry's cases whose loss is a ``cls`` (not of the variants)."""
    return [n for n in ALL if type(LOSSES[n][2]) is cls and LOSSES[n][0] not in VARIANTS]


(DISCRETE_VIREL,), (SVGD,), (SOFT_Q_LEARNING,) = (
    _ids_of(cls) for cls in (DiscreteVIRELLoss, SVGDPolicyLoss, SoftQLearningLoss)
)


def _held_classes(loss: LossModule) -> list[type]:
    return list(dict.fromkeys(type(m) for m in loss.modules() if isinstance(m, LossModule)))


def delay_arguments(name: str) -> list[str]:
    """The constructor arguments that keep target parameters (``delay_*``) of the loss ``name`` and those it holds."""
    held = _held_classes(LOSSES[name][2])
    return sorted({a for cls in held for a in constructor_arguments(cls) if a.startswith("delay_")})


def _constructor_owner(cls: type) -> type:
    return next(klass for klass in cls.__mro__ if "__init__" in vars(klass))


def _setting(owner: type, values: dict):
    """``arguments_replaced``'s edit: ``values`` into ``owner.__init__``'s bound arguments (its ``**kwargs`` for a
    name its own signature lacks, which it passes on)."""
    parameters = inspect.signature(vars(owner)["__init__"]).parameters
    var_keyword = next((p.name for p in parameters.values() if p.kind is p.VAR_KEYWORD), None)

    def replace(arguments: dict) -> None:
        for key, value in values.items():
            if key in parameters:
                arguments[key] = value
            else:
                arguments.setdefault(var_keyword, {})[key] = value

    return replace


def make(name: str, seed: int = 0, **kwargs):
    """A fresh loss ``name``, built by its recipe's ``from_config`` (networks drawn after ``torch.manual_seed(seed)``),
    each of ``kwargs`` passed to the constructor of every loss of the build that takes it (soft Q-learning's two
    losses both take ``reduction``), and its value estimator made with gamma = 0.9."""
    case, part, _, _ = LOSSES[name]
    whole = LOSSES[case.id][2]
    owners: dict[type, dict] = {}
    for key, value in kwargs.items():
        takers = [cls for cls in _held_classes(whole) if key in constructor_arguments(cls)]
        assert takers, f"no loss of {case.id} takes {key}="
        for cls in takers:
            owners.setdefault(_constructor_owner(cls), {})[key] = value
    with ExitStack() as stack:
        for owner, values in owners.items():
            stack.enter_context(arguments_replaced(owner, _setting(owner, values)))
        loss, _ = registry_losses.build(case, seed)
    loss = loss.get_submodule(part) if part else loss
    if name not in STATES_ONLY:
        loss.make_value_estimator(gamma=0.9)
    return loss


def batch(name: str, shape=(B,), seed: int = 1) -> TensorDict:
    """A valid batch of ``shape`` (the first transition terminal), its actions drawn by the case's acting policy
    (registry_losses.batch) under ``torch.manual_seed(seed)``, without moving the global generator."""
    size = math.prod(shape)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        td = registry_losses.batch(LOSSES[name][3], size=max(size, 1), seed=seed)
    return td[0] if not shape else td.reshape(shape)


def discrete(name: str) -> bool:
    return LOSSES[name][0].family == "value_based"


def run(loss, td, seed: int = 2):
    torch.manual_seed(seed)  # IQN fractions, sampled actions: the same draws for the two sides of a comparison
    return loss(td)


def loss_terms(out) -> list[str]:
    return sorted(key for key in out.keys() if key.startswith("loss"))


def test_every_registered_loss_is_checked_and_every_classification_names_a_checked_loss():
    """The properties run over every registry entry (a new one is covered with no list to extend); each variant is
    its entry's loss class under another option of the recipe's loss group; the hand-kept classifications name only
    losses that are checked, so none is stale."""
    entries = {(case.family, case.name) for case, part, _, _ in LOSSES.values() if not part}
    assert entries == registry_losses.registered()
    for variant in VARIANTS:  # another option of the entry's recipe that selects the same entry
        cfg = recipe(variant.recipe).validate(registry_losses.config(variant))
        assert (OmegaConf.get_type(cfg).family, cfg.loss.name) == (variant.family, variant.name)
        assert type(LOSSES[variant.id][2]) is variant.entry.loss_class
    assert make(VIREL_EM.id).variant == "em"
    assert make(f"{SQL_UNIFORM.id}.critic").proposal == "uniform" != make(f"{SOFT_Q_LEARNING}.critic").proposal
    assert make(IQ_GAUSSIAN.id).alpha == inspect.signature(ImplicitQLoss).parameters["alpha"].default
    assert draws_random_numbers(IQ_GAUSSIAN.id) and not draws_random_numbers("actor_critic:implicit_q")
    on_two_dims = {
        (case.recipe, case.name) for case, _, _, act in LOSSES.values()
        if case.family == "actor_critic" and registry_losses.batch(act)["action"].shape[-1:] == (2,)
    }
    assert on_two_dims == {(case.recipe, case.name) for case in LIBRARY_ACTOR_CRITIC}
    for table in (MEAN_ONLY, COMPILED):
        assert set(table) <= set(ALL), sorted(set(table) - set(ALL))
    assert {("actor_critic", name) for name in IN_PLACE_SAMPLING_ENTRIES} <= entries
    assert {type(LOSSES[n][2]) for n in ALL if type(LOSSES[n][2]).__module__.startswith("torchrl.")} == {
        DQNLoss, SACLoss
    }  # the controls


@pytest.mark.parametrize("name", ALL)
def test_out_keys_list_every_output(name):
    loss = make(name)
    assert set(run(loss, batch(name)).keys()) == set(loss.out_keys)


@pytest.mark.parametrize("name", [n for n in ALL if n not in STATES_ONLY])
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


@pytest.mark.parametrize("name", PER_SAMPLE)
def test_reductions(name):
    td = batch(name)
    per_sample = run(make(name, reduction="none"), td.clone())
    mean = run(make(name, reduction="mean"), td.clone())
    total = run(make(name, reduction="sum"), td.clone())
    for key in loss_terms(mean):
        assert per_sample[key].shape[: td.batch_dims] == td.batch_size or per_sample[key].ndim == 0
        torch.testing.assert_close(mean[key], per_sample[key].mean())
        torch.testing.assert_close(total[key], per_sample[key].sum())


@pytest.mark.parametrize("name", [n for n in OURS if n not in MEAN_ONLY])
def test_diagnostics_are_per_sample_under_reduction_none(name):
    td = batch(name)
    out = run(make(name, reduction="none"), td)
    for key in out.keys():
        assert out[key].shape[: td.batch_dims] == td.batch_size, key
    reduced = run(make(name), td)
    for key in reduced.keys():
        assert reduced[key].ndim == 0 and not reduced[key].requires_grad or key.startswith("loss"), key


@pytest.mark.parametrize("name", PER_SAMPLE)
def test_two_batch_dimensions(name):
    td = batch(name, shape=(2, B))
    out = run(make(name, reduction="none"), td.clone())
    flat = run(make(name, reduction="none"), td.reshape(-1))
    for key in loss_terms(out):
        if out[key].ndim:  # per-sample terms
            assert out[key].shape[:2] == td.batch_size
    assert torch.isfinite(run(make(name), td)[loss_terms(out)[0]]).all()
    assert set(flat.keys()) == set(out.keys())


@pytest.mark.parametrize("name", [n for n in ALL if n not in STATES_ONLY])
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


@pytest.mark.parametrize("name", [n for n in ALL if delay_arguments(n)])
def test_parameters_without_targets(name):
    loss = make(name, **dict.fromkeys(delay_arguments(name), False))
    out = run(loss, batch(name))
    assert torch.isfinite(out[loss_terms(out)[0]])


@pytest.mark.parametrize("name", ALL)
def test_state_dict_and_deepcopy_round_trips(name):
    loss = make(name)
    td = batch(name)
    reference = run(loss, td.clone())
    other = make(name, seed=5)
    for key, module in vars(loss).items():  # read, not owned (SVGD's critic, the critic's proposal sampler):
        if isinstance(module, torch.nn.Module):  # each is saved with its owner
            other.__dict__[key].load_state_dict(module.state_dict())
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


@pytest.mark.parametrize("name", PER_SAMPLE)
def test_prioritized_weighting(name):
    td = batch(name)
    weights = torch.tensor([0.5, 1.0, 2.0, 0.25])
    per_sample = run(make(name, reduction="none"), td.clone())
    weighted_td = td.clone()
    weighted_td["priority_weight"] = weights
    weighted = run(make(name), weighted_td)
    unweighted = run(make(name, use_prioritized_weights=False), weighted_td.clone())
    for key in loss_terms(weighted):  # every term, as SACLoss weights its actor and critic terms
        # TorchRL's weighted mean: sum(w * l) / sum(w).
        torch.testing.assert_close(weighted[key], (weights * per_sample[key]).sum() / weights.sum())
        torch.testing.assert_close(unweighted[key], per_sample[key].mean())


@pytest.mark.parametrize("name", [n for n in ALL if n not in STATES_ONLY])
def test_priority_is_written_in_place(name):
    loss = make(name)
    td = batch(name)
    run(loss, td)
    priority = td.get(loss.tensor_keys.priority, None)
    assert priority is not None and priority.shape[: td.batch_dims] == td.batch_size


@pytest.mark.slow
def _scalar_state(loss) -> dict:
    return {
        f"{prefix}.{name}": value
        for prefix, module in loss.named_modules()
        for name, value in vars(module).items()
        if isinstance(value, (bool, int, float))
    }


@pytest.mark.parametrize("name", ALL)
def test_python_scalar_state_settles(name):
    # torch.compile guards on a module's Python scalars: one that changes at every forward makes a compiled loss
    # recompile at every call until Dynamo's limit (VIRELLoss's call counter did, found by the GPU check of
    # 2026-11-26). Three batches may settle one-time warnings; after them nothing changes.
    loss = make(name)
    for seed in range(3):
        run(loss, batch(name, seed=seed))
    settled = _scalar_state(loss)
    for seed in range(3, 6):
        run(loss, batch(name, seed=seed))
    assert _scalar_state(loss) == settled


@pytest.mark.parametrize("name", COMPILED)
def test_torch_compile_equals_eager(name):
    loss = make(name)
    td = batch(name)
    eager = run(loss, td.clone())
    compiled = torch.compile(loss)
    out = run(compiled, td.clone())
    for key in loss_terms(eager):
        torch.testing.assert_close(out[key], eager[key])


def in_place_sampling_fails(names: list[str], reason: str) -> list:
    return [pytest.param(n, marks=pytest.mark.xfail(reason=reason, strict=True)) if n in IN_PLACE_SAMPLING else n
            for n in names]


@cache
def draws_random_numbers(name: str) -> bool:
    """Whether the loss draws random numbers in forward: two fresh copies give other outputs on one batch under
    two seeds."""
    td = batch(name)
    one, two = run(make(name), td.clone(), seed=2), run(make(name), td.clone(), seed=3)
    return any(not torch.equal(one[key], two[key]) for key in one.keys())


# VIRELLoss and SoftQLearningLoss return two loss terms (and VIREL may update its temperature buffer in
# forward), SVGDPolicyLoss has no TD error, TorchRL's losses have none: no pure single-loss loss_and_outputs to
# vmap. MDACLoss draws its reparametrized actions in place, as TorchRL's SACLoss, which vmap's per-batch
# randomness refuses.
@pytest.mark.parametrize(
    "name", in_place_sampling_fails(PURE, "in-place reparametrized sampling (TanhNormal.rsample), as TorchRL's SACLoss")
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
    # Actions sampled from batch-dependent distributions keep "different".
    randomness = "same" if isinstance(loss, BATCH_INDEPENDENT_DRAWS) else "different"
    torch.manual_seed(0)
    values = torch.vmap(pure, randomness=randomness)(stacked)
    assert values.shape[0] == 3
    for i in range(3):
        torch.manual_seed(0)
        torch.testing.assert_close(values[i], loss.loss_and_outputs(stacked[i], params)[0])


@pytest.mark.parametrize(
    "name",
    in_place_sampling_fails(
        ALL, "TorchRL's SACLoss fails too: vmap cannot give in-place action sampling different randomness"
    ),
)
def test_vmap_of_the_forward_call(name):
    loss = make(name)
    stacked = torch.stack([batch(name, seed=s) for s in (1, 2, 3)])
    key = loss_terms(run(loss, batch(name)))[0]
    values = torch.vmap(lambda td: loss(td)[key], randomness="different")(stacked)
    assert values.shape[0] == 3 and torch.isfinite(values).all()
    if not draws_random_numbers(name):
        for i in range(3):
            torch.testing.assert_close(values[i], run(loss, stacked[i].clone())[key])


@pytest.mark.parametrize("estimator", ["batch", "ema", "replay"])
def test_a_virel_temperature_estimate_under_vmap_is_refused_with_the_reason(estimator):
    # One temperature buffer cannot hold one estimate per vmapped batch: the "batch"/"ema" forward and
    # update_temperature refuse, naming the way that vmaps ("replay", estimated outside vmap); nothing is stored.
    loss = make(DISCRETE_VIREL, temperature_estimator=estimator)
    stacked = torch.stack([batch(DISCRETE_VIREL, seed=s) for s in (1, 2, 3)])
    call = loss.update_temperature if estimator == "replay" else (lambda td: loss(td)["loss"])
    with pytest.raises(ValueError, match=rf"under torch.vmap \(temperature_estimator='{estimator}'.*one temperature buffer"):
        torch.vmap(call, randomness="different")(stacked)
    assert loss.temperature.item() == 1.0


# -- single transitions, padding masks, float64, the soft Q-learning pair ---------------------


@pytest.mark.parametrize("name", ALL)
def test_a_single_transition_is_a_batch_of_one(name):
    """batch_size=() (a keyword call with 0-dim tensors, as TorchRL's DQNLoss and SACLoss accept) gives
    the loss of the same transition in a batch of one (the same random draws: re-seeded)."""
    td = batch(name, shape=())
    single = run(make(name), td.clone())
    one = run(make(name), td.unsqueeze(0))
    for key in loss_terms(one):
        assert single[key].shape == ()
        torch.testing.assert_close(single[key], one[key])


@pytest.mark.parametrize("name", ALL)
def test_padding_mask_drops_the_padded_rows(name):
    """TorchRL 0.14's ("collector", "mask") (SliceSampler(pad_output=True)): the mean runs over the kept rows."""
    td = batch(name)
    mask = torch.tensor([True, True, False, True])
    kept = run(make(name), td[mask].clone())
    masked_td = td.clone()
    masked_td["collector", "mask"] = mask
    masked = run(make(name), masked_td)
    key = loss_terms(masked)[-1]  # the critic's term where there are two (the actor's mean is over states)
    if draws_random_numbers(name):
        # The draws differ with the batch size: the padded row must not move the loss, whatever it holds.
        other = masked_td.clone()
        other["next", "reward"][2] = 1e6
        torch.testing.assert_close(run(make(name), other)[key], masked[key])
    else:
        torch.testing.assert_close(masked[key], kept[key])


@pytest.mark.parametrize("name", [n for n in ALL if n not in STATES_ONLY])  # svgd: the next test
def test_float64_loss_on_a_float64_batch(name):
    loss = make(name).to(torch.float64)
    for module in vars(loss).values():  # read, not owned (the critic's proposal sampler): converted too
        if isinstance(module, torch.nn.Module):
            module.to(torch.float64)
    td = batch(name).apply(lambda x: x.double() if x.is_floating_point() else x)
    out = run(loss, td)
    for key in loss_terms(out):
        assert out[key].dtype == torch.float64 and torch.isfinite(out[key])


def test_svgd_refuses_a_critic_left_in_another_dtype_and_has_no_estimator():
    loss = make(SVGD).to(torch.float64)  # the critic is read, not owned: still float32
    td = batch(SVGD).apply(lambda x: x.double() if x.is_floating_point() else x)
    with pytest.raises(TypeError, match="critic is torch.float32 on cpu, the sampler torch.float64 on cpu.*convert the critic too"):
        loss(td)
    with pytest.raises(NotImplementedError, match="SVGDPolicyLoss has no value estimator.*gamma belongs to the critic"):
        loss.make_value_estimator(gamma=0.9)


def test_svgd_set_keys_reach_the_batch():
    td = batch(SVGD)
    td["priority_weight"] = torch.tensor([0.5, 1.0, 2.0, 0.25])
    weighted = run(make(SVGD), td.clone())
    loss = make(SVGD)
    loss.set_keys(priority_weight="w2")
    td.rename_key_("priority_weight", "w2")
    torch.testing.assert_close(run(loss, td)["loss_actor"], weighted["loss_actor"])


def test_soft_q_learning_set_keys_reach_both_losses():
    loss = make(SOFT_Q_LEARNING)
    with pytest.raises(ValueError, match="not an accepted tensordict key"):
        loss.set_keys(advantage="a")
    loss.set_keys(reward="r2", priority_weight="w2")
    assert (loss.critic.tensor_keys.reward, loss.critic.value_estimator.tensor_keys.reward) == ("r2", "r2")
    assert loss.critic.tensor_keys.priority_weight == loss.actor.tensor_keys.priority_weight == "w2"
    assert ("next", "r2") in loss.in_keys and loss.tensor_keys.reward == "r2"


def test_soft_q_learning_reset_touches_critic_target_and_sampler_but_not_another_critic():
    loss = make(SOFT_Q_LEARNING)
    before = {name: [p.detach().clone() for p in getattr(loss, name).values(True, True)]
              for name in ("qvalue_network_params", "target_qvalue_network_params")}
    actor_before = [p.detach().clone() for p in loss.actor.actor_network_params.values(True, True)]
    loss.reset_parameters_recursive()
    for name, values in before.items():
        assert any(not torch.equal(a, b) for a, b in zip(values, getattr(loss, name).values(True, True))), name
    assert any(not torch.equal(a, b) for a, b in zip(actor_before, loss.actor.actor_network_params.values(True, True)))


# -- misuse: each is exact or refused --------------------------------------------------------------------


def int_flags(td: TensorDict, dtype: torch.dtype) -> TensorDict:
    td = td.clone()
    for key in (("next", "done"), ("next", "terminated")):
        td[key] = td[key].to(dtype)
    return td


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int64])
@pytest.mark.parametrize("name", [n for n in OURS if n not in STATES_ONLY])
def test_integer_flags_give_the_bool_flags_outputs(name, dtype):
    td = batch(name)
    reference = run(make(name), td.clone())
    out = run(make(name), int_flags(td, dtype))
    for key in reference.keys():
        torch.testing.assert_close(out[key], reference[key], msg=key)


@pytest.mark.parametrize("estimator", ["replay", "batch", "ema"])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.int64])
@pytest.mark.parametrize("name", TEMPERATURE)
def test_virel_temperature_reads_integer_flags_exactly(name, dtype, estimator):
    """Every entry point of the temperature (update_temperature, and forward's batch/EMA estimators)."""
    temperatures = []
    for td in (batch(name), int_flags(batch(name), dtype)):
        loss = make(name, temperature_estimator=estimator)
        torch.manual_seed(3)
        out = loss.update_temperature(td) if estimator == "replay" else loss(td)["temperature"]
        temperatures.append(out)
    torch.testing.assert_close(temperatures[1], temperatures[0])


def test_discrete_virel_temperature_by_hand_with_integer_flags():
    """q(s, .) = s, gamma = 0.5, c = 1, p = 2, temperature 1 in the target: sample 0 (terminal) y = 2,
    q = 0, delta = 2; sample 1, s' = [1, 3]: y = 0.5 + 0.5 E, E = (1 + 3 e^2) / (1 + e^2), q = 0.5,
    delta = 0.5 E. eps = 1/2 * mean(delta^2)."""
    from tests.objectives.test_input_checks import hand_batch, identity_actor

    expected = 0.5 * (4 + (0.5 * (1 + 3 * math.e**2) / (1 + math.e**2)) ** 2) / 2
    for dtype in (torch.bool, torch.uint8, torch.int64):
        loss = DiscreteVIRELLoss(identity_actor())
        loss.make_value_estimator(gamma=0.5)
        assert loss.update_temperature(hand_batch(dtype)).item() == pytest.approx(expected, rel=1e-6)


def out_of_space(name: str) -> TensorDict:
    td = batch(name)
    if discrete(name):
        td["action"][1] = A  # an index past the last action
    else:
        td["action"][1, 0] = 1.5  # outside the box [-1, 1]
    return td


@pytest.mark.parametrize("name", [n for n in OURS if n not in STATES_ONLY])
def test_actions_outside_the_action_space_are_refused(name):
    with pytest.raises(ValueError, match="'action' must be (an action index in \\[0, 2\\)|inside the action box).*index \\[1"):
        run(make(name), out_of_space(name))


@pytest.mark.parametrize("name", TEMPERATURE_ENTRIES)
def test_virel_temperature_refuses_what_forward_refuses(name):
    loss = make(name)
    with pytest.raises(ValueError, match="'action' must be"):
        loss.update_temperature(out_of_space(name))
    with pytest.raises(TypeError, match="bool or integer 0/1 flag"):
        loss.update_temperature(int_flags(batch(name), torch.float32))
    assert loss.temperature.item() == 1.0  # nothing was stored


@pytest.mark.filterwarnings("default")
@pytest.mark.parametrize("name", TEMPERATURE_ENTRIES)
def test_virel_warns_when_its_replay_temperature_is_never_driven(name):
    loss = make(name)
    with pytest.warns(UserWarning, match="temperature_estimator='replay' but update_temperature.*never called.*1.0"):
        for _ in range(3):
            run(loss, batch(name))
    for driven in ("update_temperature", "keep_temperature"):
        loss = make(name)
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)
            warnings.filterwarnings("ignore", "No target network updater")
            for _ in range(3):
                loss.update_temperature(batch(name)) if driven == "update_temperature" else loss.keep_temperature()
                run(loss, batch(name))
