"""Bounds before work: a config whose run would allocate more memory than the machine has is refused by the recipe's
``validate``, naming the key, the estimate and what the machine has, before any run directory exists; a key the
config's env family does not read is refused naming the family that reads it; every shipped preset fits a 24 GiB
machine."""
from __future__ import annotations

import os

import pytest
from omegaconf import OmegaConf

from tests.recipes.recipe_cases import CONF, RECIPES, recipe
from torchrl_reg.configs import compose_config, config_sources
from torchrl_reg.configs.checks import ENV_COPY_BYTES, recipe_memory
from torchrl_reg.configs.planning import tree_memory
from torchrl_reg.validation import MEMORY_BYTES_VARIABLE, available_memory, check_memory, format_bytes

GIB = 1 << 30
RECIPE_DIR = CONF.parent


def _presets(name: str) -> list[tuple[str, ...]]:
    """Every option of the recipe's env, loss and preset groups, each with the others' defaults."""
    groups = config_sources(CONF, name).groups
    cases = [()]
    for group in ("env", "loss", "tree_search_preset"):
        if group in groups:
            cases += [(f"{group}={option}",) for option in groups[group][1]]
    return cases


@pytest.mark.slow
@pytest.mark.parametrize("name", RECIPES)
def test_every_shipped_preset_fits_a_24_gib_machine(name, monkeypatch):
    monkeypatch.setenv(MEMORY_BYTES_VARIABLE, str(24 * GIB))
    module = recipe(name)
    for overrides in _presets(name):
        cfg = compose_config(CONF, name, list(overrides))
        if "buffer" in cfg:
            cfg = module.validate(cfg)  # refused: the preset does not fit
            assert sum(n for _, _, n, _ in recipe_memory(cfg)) < 24 * GIB
        else:  # the planning presets: their trees (validate also wants the MinAtar and Atari presets' trained networks)
            trees, nodes, node = tree_memory(cfg)
            assert trees * nodes * node < 24 * GIB


# (recipe, overrides, the key named, at least this many bytes estimated)
REFUSED = [
    ("m_dqn", ["env=cartpole", "buffer.size=1000000000"], "buffer.size=1000000000", 10**9 * 96),
    ("m_dqn", ["env=atari", "collector.num_envs=100000", "collector.frames_per_batch=400000"], "collector.num_envs=100000",
     100_000 * ENV_COPY_BYTES["atari"]),
    ("m_dqn", ["env=atari", "eval.episodes=1000000"], "eval.episodes=1000000", 10**6 * ENV_COPY_BYTES["atari"]),
    ("m_dqn", ["env=cartpole", "collector.frames_per_batch=1000000000", "optim.frames_per_update=1"],
     "collector.frames_per_batch=1000000000", 3 * 10**9 * 96),
    ("m_dqn", ["env=cartpole", "network.hidden=[" + ",".join(["4096"] * 200) + "]"],
     "network.hidden='200 layers of widths 4096-4096'", 4 * 24 * 4096 * 4096 * 199),
    ("sac", ["env=pendulum", "network.hidden=[100000,100000]"], "network.hidden=[100000, 100000]", 4 * 24 * 10**10),
    ("tree_search", ["tree_search_preset=minatar", "planner.simulations=10000000"], "planner.simulations=10000000",
     10**7 * (4 << 10)),
]


@pytest.mark.parametrize("name, overrides, key, at_least", REFUSED, ids=[c[2][:40] for c in REFUSED])
def test_a_run_that_would_not_fit_is_refused_before_its_directory(name, overrides, key, at_least, tmp_path, monkeypatch):
    monkeypatch.setenv(MEMORY_BYTES_VARIABLE, str(24 * GIB))
    run_dir = tmp_path / "run"
    module = recipe(name)
    cfg = compose_config(CONF, name, [*overrides, f"run_dir={run_dir}"])
    with pytest.raises(ValueError, match=rf"^{key.replace('[', '.').replace(']', '.')} needs about ([\d.]+) (\w+) of memory "
                       r"\(.*\), more than the 24.0 GiB this machine has available") as refused:
        module.train(cfg)
    number, unit = _estimate(str(refused.value))
    assert number * 1024 ** ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"].index(unit) >= at_least * 0.99
    assert not run_dir.exists() and not list(tmp_path.iterdir())


def _estimate(message: str) -> tuple[float, str]:
    import re

    number, unit = re.search(r"needs about ([\d.]+) (\w+) of", message).groups()
    return float(number), unit


def test_a_memory_mapped_replay_is_bounded_by_the_disk(tmp_path, monkeypatch):
    """``buffer.storage=memmap buffer.size=10**12`` left a 16 TB sparse file after the mmap failed."""
    run_dir = tmp_path / "run"
    cfg = compose_config(CONF, "m_dqn", ["env=cartpole", "buffer.storage=memmap", "buffer.size=1000000000000",
                                         f"run_dir={run_dir}"])
    with pytest.raises(ValueError, match=rf"buffer.size=1000000000000 needs about [\d.]+ TiB of disk under {tmp_path}"):
        recipe("m_dqn").train(cfg)
    assert not run_dir.exists()


def test_the_estimates_follow_their_formulas():
    """The terms by hand: M-DQN's Atari preset (4 frames of 84 x 84, frames stored once, 1M transitions)."""
    cfg = recipe("m_dqn").validate(compose_config(CONF, "m_dqn", ["env=atari"]))
    terms = {key: n for key, _, n, _ in recipe_memory(cfg)}
    assert cfg.buffer.dedup_frames and cfg.env.frame_stack == 4 and cfg.env.screen_size == 84
    assert terms["buffer.size"] == cfg.buffer.size * (84 * 84 + 512)
    assert terms["collector.num_envs"] == cfg.collector.num_envs * (4 << 20)
    transition = 2 * 4 * 84 * 84 + 8 + 64
    assert terms["collector.frames_per_batch"] == 3 * cfg.collector.frames_per_batch * transition
    # without the dedup: both observations of every transition
    plain = recipe("m_dqn").validate(compose_config(CONF, "m_dqn", ["env=atari", "buffer.dedup_frames=false"]))
    assert dict((k, n) for k, _, n, _ in recipe_memory(plain))["buffer.size"] == plain.buffer.size * transition
    # CartPole: 4 float32 observations read from the env's space; M-DQN's MLP [4 + 2 inputs] -> hidden -> 2 actions
    cart = recipe("m_dqn").validate(compose_config(CONF, "m_dqn", ["env=cartpole", "network.hidden=[10,20]"]))
    terms = {key: n for key, _, n, _ in recipe_memory(cart)}
    assert terms["buffer.size"] == cart.buffer.size * (2 * 16 + 8 + 64)
    params = (6 + 1) * 10 + (10 + 1) * 20 + (20 + 1) * 2
    assert terms["network.hidden"] == 4 * (24 * params + 16 * cart.buffer.batch_size * (4 + 6 + 10 + 20 + 2))
    # a planner's trees: one per episode of a group, a node per simulation plus two
    recipe("tree_search")
    tree = compose_config(CONF, "tree_search", ["tree_search_preset=minatar"])  # (validate wants its trained network)
    trees, nodes, node = tree_memory(tree)
    assert (trees, nodes) == (tree.planner.batch_episodes * tree.planner.futures,
                              tree.planner.simulations // tree.planner.futures + 2)
    assert node == 64 + 56 * 6 + 256 + (4 << 10) + (8 * 6 * (nodes - 2) if tree.planner.model == "sampled" and trees > 1 else 0)


def test_frame_stacking_on_minatar_is_refused_naming_the_family_that_reads_it(tmp_path):
    """``env=minatar env.frame_stack=100000`` trained on single frames, silently."""
    run_dir = tmp_path / "run"
    for key, value, readers in [("frame_stack", 100000, "env.family='atari' reads it"),
                                ("screen_size", 42, "env.family='atari' reads it"),
                                ("frame_skip", 2, "env.family='atari' reads it")]:
        cfg = compose_config(CONF, "m_dqn", ["env=minatar", f"env.{key}={value}", f"run_dir={run_dir}"])
        with pytest.raises(ValueError, match=rf"env.{key}={value} is not used by env.family='minatar' .*\({readers}\)"):
            recipe("m_dqn").train(cfg)
    cfg = compose_config(CONF, "m_dqn", ["env=cartpole", "env.sticky_action_prob=0.25"])
    with pytest.raises(ValueError, match=r"env.sticky_action_prob=0.25 is not used by env.family='classic' .*"
                       r"\(env.family in \['minatar', 'atari'\] reads it\)"):
        recipe("m_dqn").validate(cfg)
    assert not run_dir.exists()
    recipe("m_dqn").validate(compose_config(CONF, "m_dqn", ["env=atari", "env.frame_stack=2"]))  # read there


def test_the_machine_s_memory_and_its_override(monkeypatch):
    monkeypatch.delenv(MEMORY_BYTES_VARIABLE, raising=False)  # (tests/conftest.py sets it for the other tests)
    found = available_memory()
    assert found is None or 0 < found <= os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    monkeypatch.setenv(MEMORY_BYTES_VARIABLE, "1000")
    assert available_memory() == 1000
    check_memory("k", 1, 1000, "what")
    with pytest.raises(ValueError, match=r"^k=1 needs about 1001 B of memory \(what\), more than the 1000 B"):
        check_memory("k", 1, 1001, "what")
    monkeypatch.setenv(MEMORY_BYTES_VARIABLE, "lots")
    with pytest.raises(ValueError, match=rf"{MEMORY_BYTES_VARIABLE} must be a number of bytes \(an integer\), got 'lots'"):
        available_memory()
    assert format_bytes(3 * GIB // 2) == "1.5 GiB" and format_bytes(512) == "512 B"


def test_a_sweep_range_past_the_task_bound_is_refused_before_its_values_exist(tmp_path, capsys):
    """``sweep --dry-run seed=range(0,10**12)`` took 1.8 GB in 11 s listing the range."""
    from torchrl_reg.sweep.__main__ import main
    from torchrl_reg.sweep.spec import MAX_TASKS, SweepError, expand_overrides

    sweep_dir = tmp_path / "sweep"
    assert main([str(RECIPE_DIR / "m_dqn.py"), "seed=range(0,1000000000000)", "--dry-run", "--dir", str(sweep_dir)]) == 2
    err = capsys.readouterr().err
    assert f"'seed=range(0,1000000000000)' gives seed 1000000000000 values, more than the {MAX_TASKS} tasks" in err
    assert not sweep_dir.exists()
    with pytest.raises(SweepError, match=rf"the overrides make 1000000 tasks \(1000 x 1000\), more than the {MAX_TASKS}"):
        expand_overrides(["seed=range(0,1000)", "optim.lr=range(1,1001)"])
    assert len(expand_overrides(["seed=range(0,10)", "optim.lr=range(0.5,3.2,0.5)"])[0]) == 60


def test_report_reps_past_the_memory_are_refused_before_any_file(tmp_path, capsys, monkeypatch):
    """``report --reps 10**9`` failed in the allocator."""
    from torchrl_reg.report.stats import bootstrap_bytes, stratified_bootstrap_ci
    from torchrl_reg.report.summary import main

    monkeypatch.setenv(MEMORY_BYTES_VARIABLE, str(24 * GIB))
    (tmp_path / "runs").mkdir()
    assert main([str(tmp_path / "runs"), "--reps", "1000000000", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --reps=1000000000 needs about 29.8 GiB of memory (bootstrap: 1000000000 resamples x 1 runs")
    assert not (tmp_path / "out").exists() and not list((tmp_path / "runs").iterdir())
    # with the runs known: 10 runs of 10**8 resamples (32 B each) is 29.8 GiB
    assert bootstrap_bytes(10**8, 10) == 32 * 10**9
    with pytest.raises(ValueError, match=r"reps=100000000 needs about 29.8 GiB of memory \(bootstrap: 100000000 resamples x 10 runs"):
        stratified_bootstrap_ci([[float(i) for i in range(10)]], lambda t: t[0].mean(axis=-1), reps=10**8)
