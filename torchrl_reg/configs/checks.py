"""The checks a recipe config passes before anything is built: keys and types against the schema
(:func:`structured`), the ranges of every group (:func:`validate_run_config`, :func:`validate_recipe_config` and its
family's, :func:`validate_planning_config`), and the keys a group declares closed or read only under some setting
(:func:`check_config`, which runs all of them)."""
from __future__ import annotations

import dataclasses
import functools
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from torchrl_reg.configs.schemas import (
    CONTROL_FAMILIES,
    LOSS_FUNCTIONS,
    MAX_SEED,
    STORAGES,
    TARGET_UPDATES,
    ActorCriticConfig,
    BoltzmannValueBasedConfig,
    PlanningConfig,
    RecipeConfig,
    ValueBasedConfig,
)
from torchrl_reg.envs.ids import ENV_BACKENDS, ENV_FAMILIES, gym_env_id, require_extra
from torchrl_reg.modules.policies import check_scale_lb
from torchrl_reg.modules.q_networks import NETWORK_KINDS
from torchrl_reg.cli import printable
from torchrl_reg.run.files import READ_LIMITS
from torchrl_reg.run.logs import check_logger_backend
from torchrl_reg.validation import (
    available_memory,
    check_choice,
    check_count,
    check_device,
    check_memory,
    check_multiple,
    check_range,
    check_unread,
    closest,
    declared,
    select_device,
)

__all__ = [
    "ENV_COPY_BYTES",
    "check_config",
    "check_config_size",
    "check_recipe_memory",
    "recipe_memory",
    "check_env_backend",
    "check_loss_config",
    "structured",
    "validate_actor_critic_config",
    "validate_planning_config",
    "validate_recipe_config",
    "validate_run_config",
    "validate_value_based_config",
]

def _accepted_keys(schema: type) -> list[str]:
    return [f.name for f in fields(schema)]


def _schema_at(schema: type, dotted_key: str) -> type:
    """The dataclass that holds the last component of ``dotted_key`` (for error messages)."""
    for part in dotted_key.split(".")[:-1]:
        sub = {f.name: f for f in fields(schema)}.get(part)
        if sub is None or sub.default_factory is dataclasses.MISSING or not is_dataclass(sub.default_factory()):
            break
        schema = type(sub.default_factory())
    return schema


def _unknown_keys(node: Any, schema: type, prefix: str = "") -> list[str]:
    """Keys of ``node`` that ``schema`` (a dataclass) does not declare, at any depth, dotted."""
    declared = {f.name: f for f in fields(schema)}
    unknown = []
    for key in node.keys():
        if key not in declared:
            unknown.append(f"{prefix}{key}")
            continue
        factory = declared[key].default_factory
        child = node._get_node(key) if isinstance(node, DictConfig) else node[key]
        if factory is not dataclasses.MISSING and is_dataclass(sub := factory()) and isinstance(child, (DictConfig, Mapping)):
            unknown += _unknown_keys(child, type(sub), f"{prefix}{key}.")
    return unknown


def structured(cfg: Mapping[str, Any] | DictConfig, schema: type) -> DictConfig:
    """Merge ``cfg`` onto the ``schema`` dataclass: refuses unknown keys and ill-typed values.

    Hydra already does this for configs composed from YAML, except for keys added with ``+key=``
    or ``++key=`` (Hydra adds those to any node), which are refused here, whatever the prefix;
    this also covers ``train(cfg)`` called with a plain dict or a config built by hand.
    """
    if not is_dataclass(schema):
        raise TypeError(f"schema must be a dataclass type, got {schema!r}")
    unknown = _unknown_keys(cfg, schema)
    if unknown:
        accepted = _accepted_keys(_schema_at(schema, unknown[0]))
        prefix = unknown[0].rpartition(".")[0]
        guess = closest(unknown[0], [f"{prefix}.{key}" if prefix else key for key in accepted])
        raise ValueError(
            f"invalid config entry {unknown[0]!r}: not a key of the schema (added with +/++ or by hand, it "
            "would be ignored)" + (f"; did you mean {guess!r}?" if guess else ".")
            + f" Accepted keys at this level: {accepted}"
            + (f"; also unknown: {unknown[1:]}" if len(unknown) > 1 else "")
        )
    base = OmegaConf.structured(schema)
    # As plain data: a config composed against another copy of the schema class (a recipe imported
    # twice, e.g. by a sweep) merges by its keys and values, not by its class.
    plain = OmegaConf.to_container(cfg, resolve=False) if OmegaConf.is_config(cfg) else cfg
    try:
        merged = OmegaConf.merge(base, plain)
    except OmegaConfBaseException as err:
        key = str(getattr(err, "full_key", None) or getattr(err, "key", None) or "")
        raise ValueError(
            f"invalid config entry {key!r}: {str(getattr(err, 'msg', err)).splitlines()[0]}. "
            f"Accepted keys at this level: {_accepted_keys(_schema_at(schema, key))}"
        ) from None
    OmegaConf.set_struct(merged, True)
    return merged


def validate_run_config(cfg: DictConfig) -> None:
    """Range checks of :class:`RunConfig`'s keys, those of every run; raises ``ValueError`` naming the value."""
    check_count("seed", cfg.seed, 0)
    if cfg.seed > MAX_SEED:
        raise ValueError(f"seed must be an integer in [0, {MAX_SEED}] (numpy's seed range), got seed={cfg.seed}")
    check_count("num_threads", cfg.num_threads)
    check_logger_backend(cfg.logger.backend)
    run_dir = OmegaConf.select(cfg, "run_dir", throw_on_resolution_failure=False)
    if isinstance(run_dir, str) and (bad := next((c for c in run_dir if not c.isprintable() and c != " "), None)):
        what = "a NUL, which ends a path in every system call" if bad == "\0" else f"the control character {bad!r}"
        raise ValueError(f"run_dir must be a path of printable characters, got run_dir={printable(repr(run_dir))[:200]}: "
                         f"it holds {what}")
    check_config_size(cfg)


def check_config_size(cfg: DictConfig) -> None:
    """Refuse a config whose ``config.yaml`` would be larger than a run reads back (``READ_LIMITS["config"]``,
    4 MiB; a resume would refuse its own record), naming the largest value; before anything is written."""
    try:
        text = OmegaConf.to_yaml(cfg, resolve=True)
    except OmegaConfBaseException:  # an interpolation that does not resolve: reported by the checks that read it
        text = OmegaConf.to_yaml(cfg, resolve=False)
    size, limit = len(text.encode()), READ_LIMITS["config"]
    if size <= limit:
        return
    leaves = [(key, value) for key, value in _leaves(OmegaConf.to_container(cfg, resolve=False))]
    key, value = max(leaves, key=lambda kv: len(str(kv[1])), default=("?", ""))
    raise ValueError(
        f"the config is {size} bytes as config.yaml, more than the {limit} bytes a run reads back: {key} alone holds "
        f"{len(str(value))} characters ({printable(str(value)[:40])}...). Give it a shorter value"
    )


def _leaves(node: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(node, dict):
        return [kv for k, v in node.items() for kv in _leaves(v, f"{prefix}{k}.")]
    if isinstance(node, list):
        return [kv for i, v in enumerate(node) for kv in _leaves(v, f"{prefix}{i}.")]
    return [(prefix[:-1], node)]


def validate_recipe_config(cfg: DictConfig) -> None:
    """Range checks of :class:`RecipeConfig`'s groups; raises ``ValueError`` naming the value and the accepted range."""
    validate_run_config(cfg)
    check_device(cfg.device)  # its spelling, before any directory; whether this machine has it, when the run starts
    if cfg.cuda_graph:
        if not cfg.compile:
            raise ValueError("cuda_graph=true replays the compiled fused update: it needs compile=true, got compile=false")
        device = select_device(cfg.device)
        if device.type != "cuda":
            raise ValueError(f"cuda_graph=true records CUDA graphs: it needs a CUDA device, got device={cfg.device!r} ({device})")
    check_choice("env.family", cfg.env.family, ENV_FAMILIES)
    check_range("env.sticky_action_prob", cfg.env.sticky_action_prob, 0.0, 1.0)
    check_count("env.frame_skip", cfg.env.frame_skip)
    check_count("env.frame_stack", cfg.env.frame_stack)
    check_count("env.screen_size", cfg.env.screen_size)
    if cfg.env.max_episode_steps is not None:
        check_count("env.max_episode_steps", cfg.env.max_episode_steps)
    if cfg.env.reward_clip is not None:
        check_range("env.reward_clip", cfg.env.reward_clip, 0.0, low_inclusive=False)
    check_env_backend(cfg.env)
    gym_env_id(cfg.env)  # a registered id: registry look-ups, no env built
    check_choice("network.kind", cfg.network.kind, NETWORK_KINDS)
    if cfg.network.kind == "mlp" and not cfg.network.hidden:
        raise ValueError("network.hidden must list at least one layer width for network.kind='mlp', got network.hidden=[]")
    for width in cfg.network.hidden:
        check_count("network.hidden[i]", width)

    c = cfg.collector
    check_count("collector.total_frames", c.total_frames)
    check_count("collector.num_envs", c.num_envs)
    check_count("collector.frames_per_batch", c.frames_per_batch)
    check_multiple("collector.frames_per_batch", c.frames_per_batch, "collector.num_envs", c.num_envs)
    check_count("collector.init_random_frames", c.init_random_frames, 0)
    # TorchRL rounds a partial batch up to a whole one: refuse it rather than collect more than asked.
    check_multiple("collector.init_random_frames", c.init_random_frames, "collector.frames_per_batch", c.frames_per_batch)

    b = cfg.buffer
    check_count("buffer.size", b.size)
    check_count("buffer.batch_size", b.batch_size)
    check_range("buffer.priority_alpha", b.priority_alpha, 0.0)
    check_range("buffer.priority_beta", b.priority_beta, 0.0, 1.0)
    check_choice("buffer.storage", b.storage, STORAGES)
    if b.size < b.batch_size:
        raise ValueError(f"buffer.size must be >= buffer.batch_size={b.batch_size} (a minibatch is drawn from it), got buffer.size={b.size}")

    o = cfg.optim
    check_range("optim.lr", o.lr, 0.0, low_inclusive=False)
    check_range("optim.eps", o.eps, 0.0, low_inclusive=False)  # Adam divides by sqrt(v) + eps
    if o.max_grad_norm is not None:
        check_range("optim.max_grad_norm", o.max_grad_norm, 0.0, low_inclusive=False)
    check_count("optim.learning_starts", o.learning_starts, 0)
    check_count("optim.frames_per_update", o.frames_per_update)
    check_multiple("collector.frames_per_batch", c.frames_per_batch, "optim.frames_per_update", o.frames_per_update)
    warn_if_no_update(c, o)

    check_count("eval.interval", cfg.eval.interval, 0)
    check_count("eval.episodes", cfg.eval.episodes, 0)
    check_range("eval.epsilon", cfg.eval.epsilon, 0.0, 1.0)
    check_count("eval.max_steps", cfg.eval.max_steps)
    check_count("checkpoint.interval", cfg.checkpoint.interval, 0)
    check_count("logger.interval", cfg.logger.interval)


def warn_if_no_update(collector: Any, optim: Any) -> None:
    """Warn (once per budget, when the config is checked) that ``collector.total_frames`` (as the collector rounds it,
    up to whole batches) leaves fewer than ``optim.frames_per_update`` frames after ``optim.learning_starts``: the run
    would complete and report the returns of its untrained policy with 0 updates, and no word. A warning, not a
    refusal: a budget of a few frames is how a run directory, a checkpoint or a sweep is tried out."""
    batches = -(-collector.total_frames // collector.frames_per_batch)
    frames = batches * collector.frames_per_batch
    if frames - optim.learning_starts < optim.frames_per_update:
        warnings.warn(
            f"collector.total_frames={collector.total_frames} ({frames} frames collected in whole batches) is not "
            f"optim.frames_per_update={optim.frames_per_update} past optim.learning_starts={optim.learning_starts}: "
            "the run makes no update and reports an untrained policy; raise collector.total_frames above "
            f"{optim.learning_starts + optim.frames_per_update - 1} or lower optim.learning_starts",
            UserWarning,
            stacklevel=2,
        )


def check_env_backend(env: Any) -> None:
    """Raise ``ValueError`` unless ``env.backend`` (an :class:`EnvConfig`'s) is one of :data:`ENV_BACKENDS` and,
    for ``vector``, the env is Atari, its time limit fits ale-py's frame counter and ale-py has the vector env."""
    check_choice("env.backend", env.backend, ENV_BACKENDS)
    if env.backend != "vector":
        return
    if env.family != "atari":
        raise ValueError(
            f"env.backend='vector' is ale-py's Atari vector env: it needs env.family='atari', got env.family={env.family!r} "
            "(leave env.backend at 'wrappers')"
        )
    from packaging.version import Version

    ale_py = require_extra("atari", "env.backend='vector'")

    # The version read and tested (tests/envs/test_atari_vector_env.py): 0.11 lacks the vector env's
    # seeded and partial resets, which the TorchRL wrapper needs.
    if Version(ale_py.__version__) < Version("0.12.1"):
        raise ValueError(f"env.backend='vector' needs ale-py >= 0.12.1 (its AtariVectorEnv), found ale-py {ale_py.__version__}")
    from torchrl_reg.envs.atari_vector import MAX_EPISODE_FRAMES

    if env.max_episode_steps is not None and env.max_episode_steps * env.frame_skip > MAX_EPISODE_FRAMES:
        raise ValueError(
            f"env.backend='vector' counts an episode's frames in a C++ int: env.max_episode_steps * env.frame_skip must "
            f"be <= {MAX_EPISODE_FRAMES}, got {env.max_episode_steps} * {env.frame_skip}"
        )


def validate_value_based_config(cfg: DictConfig) -> None:
    """:func:`validate_recipe_config` plus the checks of :class:`ValueBasedConfig`'s own keys (those of
    :class:`BoltzmannValueBasedConfig`, which has no ``exploration``) and
    :class:`ValueBasedLossConfig`'s ``gamma`` (the loss name is the recipe's to check)."""
    validate_recipe_config(cfg)
    if cfg.network.kind == "nature_cnn" and cfg.env.screen_size < 36:
        raise ValueError(f"network.kind='nature_cnn' needs frames of at least 36x36, got env.screen_size={cfg.env.screen_size}")
    o = cfg.optim
    check_count("optim.target_update_interval", o.target_update_interval)
    check_multiple("optim.target_update_interval", o.target_update_interval, "optim.frames_per_update", o.frames_per_update)
    e = cfg.get("exploration")  # None: a BoltzmannValueBasedConfig
    if e is not None:
        check_range("exploration.eps_init", e.eps_init, 0.0, 1.0)
        check_range("exploration.eps_end", e.eps_end, 0.0, 1.0)
        check_count("exploration.annealing_frames", e.annealing_frames, 0)
    check_range("loss.gamma", cfg.loss.gamma, 0.0, 1.0)


def validate_actor_critic_config(cfg: DictConfig) -> None:
    """:func:`validate_recipe_config` plus the limits of :class:`ActorCriticConfig` (Box-action env
    families, MLP networks) and the checks of :class:`ActorCriticLossConfig`'s keys."""
    validate_recipe_config(cfg)
    check_choice("env.family", cfg.env.family, CONTROL_FAMILIES)
    check_choice("network.kind", cfg.network.kind, ("mlp",))
    check_range("loss.gamma", cfg.loss.gamma, 0.0, 1.0, high_inclusive=False)
    check_choice("loss.target_update", cfg.loss.target_update, TARGET_UPDATES)
    if "scale_lb" in cfg.get("policy", {}):  # the tanh-Gaussian's std floor (GaussianPolicyConfig, IQ's policy)
        check_scale_lb("policy.scale_lb", cfg.policy.scale_lb)
    interval = cfg.loss.hard_update_interval
    if cfg.loss.target_update == "polyak":
        check_range("loss.polyak", cfg.loss.polyak, 0.0, 1.0, low_inclusive=False)
        if interval is not None:  # set without the mode that reads it: refused, never ignored
            raise ValueError(
                f"loss.hard_update_interval={interval!r} is read only with loss.target_update=hard, "
                "got loss.target_update=polyak (set loss.target_update=hard, or leave the interval unset)"
            )
    else:
        if interval is None:
            raise ValueError("loss.target_update=hard needs loss.hard_update_interval (an integer >= 1, in updates)")
        check_count("loss.hard_update_interval", interval)


def validate_planning_config(cfg: DictConfig) -> None:
    """:func:`validate_run_config` plus the checks of a :class:`PlanningConfig`'s own keys (episodes, the checkpoint
    interval); the planning recipe's groups (task, planner, evaluator) check themselves
    (:mod:`torchrl_reg.configs.planning`, their ``check_group``, run by :func:`check_config`)."""
    validate_run_config(cfg)
    check_count("episodes", cfg.episodes)
    check_range("checkpoint.interval_s", cfg.checkpoint.interval_s, 0.0)


def check_loss_config(loss_class: type, node: Any, *, names: Mapping[str, str] | None = None, **values: Any) -> None:
    """Check config group ``node`` (``loss``) with ``loss_class``'s own argument checks
    (:class:`~torchrl_reg.validation.ArgumentChecks`), errors naming ``loss.<key>``: the loss owns its ranges,
    and a recipe's ``validate`` adds only the rules across groups. ``values`` replace the config's (a value the
    config spells differently, e.g. ``None`` for the loss's own default); ``names`` maps an argument the config
    keys under another name to that key (``{"annealing_num_steps": "tau_annealing_updates"}``), errors naming the
    config's key; a loss without checks is skipped."""
    checks = getattr(loss_class, "argument_checks", None)
    if checks is None:
        return
    names = names or {}
    arguments = {key: node[names.get(key, key)] for key in checks if names.get(key, key) in node} | values
    loss_class.check_arguments(arguments, prefix="loss.", names=names)


def check_config(
    cfg: Mapping[str, Any] | DictConfig, schema: type, *, loss_names: Sequence[str] | None = None
) -> DictConfig:
    """``cfg`` merged onto ``schema`` (:func:`structured`: unknown keys and ill-typed values refused),
    checked by its family's validator (:func:`validate_value_based_config`,
    :func:`validate_actor_critic_config`, :func:`validate_planning_config`, else :func:`validate_recipe_config`),
    ``loss.name`` against ``loss_names`` (the losses the recipe registered, :func:`~torchrl_reg.loops.recipe_entry`)
    and the keys a group dataclass declares in ``choices`` against their values (both before the keys they decide),
    ``loss.loss_function`` (when the loss has one) against :data:`LOSS_FUNCTIONS`, and no group holding a value for a
    key that its settings leave unread (a group dataclass's ``read_only_if``,
    :func:`~torchrl_reg.validation.check_unread`): ``loss=dqn loss.alpha=0.5`` is refused, not ignored."""
    cfg = structured(cfg, schema)
    family = next(base for base in schema.__mro__ if base in _FAMILY_CHECKS)
    _FAMILY_CHECKS[family](cfg)
    for group in fields(schema):  # a group that checks itself, given the whole config (e.g. the planning groups)
        if isinstance(group.default_factory, type) and hasattr(group.default_factory, "check_group"):
            group.default_factory.check_group(cfg)
    if loss_names is not None:
        check_choice("loss.name", cfg.loss.name, loss_names)
    for group in fields(schema):
        node = group.default_factory() if group.default_factory is not dataclasses.MISSING else None
        if not is_dataclass(node):
            continue
        for key, accepted in declared(type(node), "choices").items():
            check_choice(f"{group.name}.{key}", cfg[group.name][key], accepted)
        if group.name == "loss" and "loss_function" in cfg.loss:
            check_choice("loss.loss_function", cfg.loss.loss_function, LOSS_FUNCTIONS)
        check_unread(group.name, cfg[group.name], type(node))
    if issubclass(family, RecipeConfig):  # last: every value is in range, and read by the run
        check_recipe_memory(cfg)
    return cfg


#: Bytes of memory one env copy of each family takes, about three times what one took when measured (a copy made
#: and reset, the process's resident memory before and after 40 of them, gymnasium 1.x on x86-64): classic 2.3 KiB
#: (Acrobot-v1), MinAtar 8.4 KiB (Breakout), Atari 1.0 MiB (Pong, ALE v5 with the Dopamine wrappers; ale-py's
#: vector env keeps one emulator per copy too), MuJoCo 1.2 MiB (Humanoid-v5).
ENV_COPY_BYTES = {"classic": 8 << 10, "minatar": 32 << 10, "atari": 4 << 20, "mujoco": 4 << 20}
#: MinAtar's largest observation (Seaquest: 10 channels of 10 x 10) and full action set.
_MINATAR_OBS, _MINATAR_ACTIONS = 10 * 10 * 10, 6
#: ALE's full action set.
_ATARI_ACTIONS = 18
#: Bytes a stored transition takes beyond its observations, rounded up: action (int64), reward (float32), the three
#: done flags, TorchRL's per-entry index; and per frame of the frame-stack dedup, its ids (FrameStackStorage).
_TRANSITION_EXTRA, _DEDUP_EXTRA = 64, 512


@functools.cache
def _env_spaces(family: str, name: str) -> tuple[int, int, int, int]:
    """``(observation bytes, action bytes, inputs of the network, actions)`` of one env of a vector-observation family
    (actions: a discrete space's count, a Box's dimensions), read from one env built for it (the gymnasium id decides
    them; cached)."""
    from omegaconf import OmegaConf

    from torchrl_reg.configs.schemas import EnvConfig
    from torchrl_reg.envs.make import make_single_env

    try:
        env = make_single_env(OmegaConf.structured(EnvConfig(family=family, name=name)))
    except Exception as err:  # noqa: BLE001 -- a missing extra, a broken id: the run would fail the same way, later
        raise ValueError(f"env.name={name!r} (env.family={family!r}) cannot be built here: {type(err).__name__}: "
                         f"{str(err).splitlines()[0] if str(err) else ''}") from err
    try:
        obs, action = env.observation_space, env.action_space
        obs_bytes = int(np.prod(obs.shape)) * max(obs.dtype.itemsize, 4)  # float64 spaces are stored as float32 or wider
        actions = int(np.prod(action.shape)) if action.shape else int(getattr(action, "n", 1))
        return obs_bytes, 8 if not action.shape else actions * 4, int(np.prod(obs.shape)), actions
    finally:
        env.close()


def _nature_features(screen: int) -> int:
    side = ((screen - 8) // 4 + 1 - 4) // 2 + 1 - 2  # 8x8 stride 4, 4x4 stride 2, 3x3 stride 1
    return 64 * max(side, 1) ** 2


def recipe_memory(cfg: DictConfig) -> list[tuple[str, Any, int, str]]:
    """What a replay-based run of the checked config ``cfg`` allocates, term by term, as
    ``(key, value, bytes, formula)``: an upper estimate from the config alone (nothing built but, for a
    vector-observation env, one env to read its spaces). With ``O`` the bytes of one observation (Atari
    ``frame_stack * screen_size**2`` uint8, MinAtar at most ``10 * 10 * 10`` uint8, classic and MuJoCo from the env's
    space, float32 or wider), ``T = 2 O + 64`` the bytes of one stored transition (the observation and the next one,
    action, reward, flags, index), ``E`` the bytes of one env copy (:data:`ENV_COPY_BYTES`, about three times the
    measured):

    * replay ``buffer.size``: ``size * T``; with ``buffer.dedup_frames`` on stacked frames each frame once,
      ``size * (screen_size**2 + 512)``; prioritized replay adds its two segment trees, ``32 * 2**ceil(log2 size)``;
      with ``buffer.storage=memmap`` it is disk (the run directory's filesystem), not memory;
    * env copies ``collector.num_envs``: ``num_envs * E``;
    * evaluation ``eval.episodes``: one env copy per episode, played together, ``episodes * E``;
    * collector batch ``collector.frames_per_batch``: ``3 * frames_per_batch * T`` (the batch, its transitions
      reshaped, the copy written to the buffer);
    * networks ``network.hidden``: ``4 * (24 P + 16 B W)`` with ``P`` the parameters of one network of the config's
      shape (its torso, then ``hidden``, then an output per action), ``B = buffer.batch_size`` and ``W`` the widths of
      its activations: 24 parameter-sized tensors cover the online and target copies of up to three networks (an
      actor-critic's policy and twin critics) with their gradients and Adam's two moments, 16 activation-sized
      tensors their forward and backward passes.
    """
    env, buffer = cfg.env, cfg.buffer
    if env.family == "atari":
        frame = env.screen_size**2
        obs, action, actions, inputs = env.frame_stack * frame, 8, _ATARI_ACTIONS, env.frame_stack * frame
    elif env.family == "minatar":
        frame, obs, action, actions, inputs = _MINATAR_OBS, _MINATAR_OBS, 8, _MINATAR_ACTIONS, _MINATAR_OBS
    else:
        obs, action, inputs, actions = _env_spaces(env.family, env.name)
        frame = obs
    transition = 2 * obs + action + _TRANSITION_EXTRA
    copy = ENV_COPY_BYTES[env.family]

    terms = []
    if buffer.dedup_frames and env.family == "atari" and env.frame_stack > 1:
        replay, formula = buffer.size * (frame + _DEDUP_EXTRA), f"{buffer.size} transitions x ({frame} + 512) B, frames stored once"
    else:
        replay, formula = buffer.size * transition, f"{buffer.size} transitions x {transition} B"
    if buffer.prioritized:
        replay += 32 * 2 ** math.ceil(math.log2(buffer.size))
        formula += " + the priority trees"
    terms.append(("buffer.size", buffer.size, replay, f"replay: {formula}"))
    terms.append(("collector.num_envs", cfg.collector.num_envs, cfg.collector.num_envs * copy,
                  f"{cfg.collector.num_envs} env copies x {copy} B"))
    if cfg.eval.episodes:
        terms.append(("eval.episodes", cfg.eval.episodes, cfg.eval.episodes * copy,
                      f"evaluation: one env copy per episode, {cfg.eval.episodes} x {copy} B"))
    batch = cfg.collector.frames_per_batch
    terms.append(("collector.frames_per_batch", batch, 3 * batch * transition,
                  f"collector batch: 3 copies of {batch} frames x {transition} B"))

    hidden = [int(h) for h in cfg.network.hidden]
    if cfg.network.kind == "minatar_conv":
        torso_params, features, torso_acts = 16 * 10 * 9 + 16, 1600, 2 * 1600
    elif cfg.network.kind == "nature_cnn":
        features = _nature_features(env.screen_size)
        torso_params = 32 * env.frame_stack * 64 + 32 + 64 * 32 * 16 + 64 + 64 * 64 * 9 + 64
        torso_acts = 2 * (32 * ((env.screen_size - 8) // 4 + 1) ** 2) + 3 * features
    else:
        torso_params, features, torso_acts = 0, inputs + actions, inputs  # a critic reads the action too
    widths = [features, *hidden, actions]
    params = torso_params + sum((a + 1) * b for a, b in zip(widths, widths[1:]))
    activations = torso_acts + sum(widths)
    networks = 4 * (24 * params + 16 * buffer.batch_size * activations)
    shown = hidden if len(hidden) <= 8 else f"{len(hidden)} layers of widths {min(hidden)}-{max(hidden)}"
    terms.append(("network.hidden", shown, networks,
                  f"networks: {params} parameters x 24 copies + {activations} activations x {buffer.batch_size} x 16, float32"))
    return terms


def check_recipe_memory(cfg: DictConfig, available: int | None = None) -> None:
    """Refuse a replay-based config whose run would allocate more memory than this machine has available
    (:func:`~torchrl_reg.validation.available_memory`, or ``available`` bytes), before anything is built: one line
    naming the largest term's key, the estimate and what the machine has (:func:`recipe_memory` gives the terms and
    their formulas). A memory-mapped replay (``buffer.storage=memmap``) is compared with the free space of the run
    directory's filesystem instead."""
    import shutil

    terms = recipe_memory(cfg)
    in_memory = [t for t in terms if not (t[0] == "buffer.size" and cfg.buffer.storage == "memmap")]
    if cfg.buffer.storage == "memmap":
        key, value, needed, what = terms[0]
        folder = Path(os.path.abspath(cfg.run_dir if cfg.get("run_dir") else "."))
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        check_memory(key, value, needed, what, available=shutil.disk_usage(folder).free, where=f"disk under {folder}")
    available = available_memory() if available is None else available
    total = sum(t[2] for t in in_memory)
    key, value, _, _ = max(in_memory, key=lambda t: t[2])
    parts = "; ".join(f"{k}: {what}" for k, _, n, what in sorted(in_memory, key=lambda t: -t[2]) if n >= total / 100)
    check_memory(key, value, total, f"the run's largest allocations: {parts}", available=available)


_FAMILY_CHECKS = {
    ValueBasedConfig: validate_value_based_config,
    BoltzmannValueBasedConfig: validate_value_based_config,
    ActorCriticConfig: validate_actor_critic_config,
    RecipeConfig: validate_recipe_config,
    PlanningConfig: validate_planning_config,
}
