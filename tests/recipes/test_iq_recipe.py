"""Tests of recipes/iq.py and recipes/sac.py: configs, early errors, smoke runs, exact resume."""
from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib.image
import pytest
import torch

from recipes import iq, sac
from torchrl_reg.configs import compose_config
from torchrl_reg.run import load_checkpoint, request_stop_at

CONF = Path(__file__).resolve().parents[2] / "recipes" / "conf"
MUJOCO = ("halfcheetah", "hopper", "walker2d", "ant", "humanoid")


def _tiny(run_dir: Path, **extra: str) -> list[str]:
    """Overrides for a run of a few hundred frames with small networks."""
    overrides = {
        "run_dir": str(run_dir),
        "collector.total_frames": "300",
        "collector.frames_per_batch": "50",
        "buffer.size": "1000",
        "buffer.batch_size": "32",
        "optim.learning_starts": "100",
        "network.hidden": "[16,16]",
        "eval.interval": "150",
        "eval.episodes": "2",
        "eval.max_steps": "50",
        "checkpoint.interval": "150",
        "logger.interval": "100",
        "logger.progress_bar": "false",
        "compile": "false",  # the compiled updates have their own tests (and one smoke run below)
    }
    overrides.update(extra)
    return [f"{k}={v}" for k, v in overrides.items()]


@pytest.mark.parametrize("env", [*MUJOCO, "pendulum"])
def test_presets_compose_and_hold_the_paper_hyperparameters(env):
    cfg = iq.validate(compose_config(CONF, "iq", [f"env={env}"]))
    sac_cfg = sac.validate(compose_config(CONF, "sac", [f"env={env}"]))
    for c in (cfg, sac_cfg):  # same budget and architecture for the side-by-side comparison
        assert c.collector == cfg.collector and c.buffer == cfg.buffer and c.optim == cfg.optim
        assert c.network == cfg.network and c.loss.polyak == 0.005 and c.loss.gamma == 0.99
    assert (cfg.loss.alpha, cfg.loss.tau, cfg.loss.bootstrap) == (0.9, 0.01, "target")
    assert (cfg.policy.kind, cfg.policy.num_bins) == ("multicategorical", 11)
    assert cfg.compile == sac_cfg.compile == (env != "pendulum")
    if env != "pendulum":
        assert cfg.network.hidden == [256, 256] and cfg.optim.lr == 3e-4
        assert cfg.buffer.batch_size == 256 and cfg.buffer.size == 1_000_000
        assert cfg.env.family == "mujoco" and cfg.env.name.endswith("-v5")


@pytest.mark.parametrize(
    "loss, expected",
    [("m_iq", (0.9, "target")), ("iq", (0.0, "target")), ("trust_pcl", (0.9, "online")), ("pcl", (0.0, "online"))],
)
def test_loss_presets(loss, expected):
    cfg = iq.validate(compose_config(CONF, "iq", [f"loss={loss}", "policy=gaussian"]))
    assert (cfg.loss.alpha, cfg.loss.bootstrap) == expected and iq.method_name(cfg.loss) == loss
    assert cfg.policy.kind == "gaussian"


@pytest.mark.parametrize(
    "override, match",
    [
        ("loss.alpha=1.0", "loss.alpha"),
        ("loss.alpha=-0.5", "loss.alpha"),
        ("loss.tau=0", "loss.tau"),
        ("loss.bootstrap=residual", "loss.bootstrap"),
        ("policy.num_bins=1", "policy.num_bins"),
        ("policy.kind=beta", "policy.kind"),
        ("loss.polyak=0", "loss.polyak"),
        ("env.name=CartPole-v1", "Box"),
        ("loss.clip_value_min=-1", "both loss.clip_value_min and loss.clip_value_max"),
        ("loss.clip_value_max=0", "both loss.clip_value_min and loss.clip_value_max"),
    ],
)
def test_bad_iq_configs_fail_before_training(tmp_path, override, match):
    key, value = override.split("=", 1)
    cfg = compose_config(CONF, "iq", _tiny(tmp_path, env="pendulum", **{key: value}))
    with pytest.raises(ValueError, match=match):
        iq.train(cfg)
    assert not (tmp_path / "checkpoint.pt").exists()


def test_scaled_gaussian_and_inverted_clip_fail_before_training(tmp_path):
    cfg = compose_config(CONF, "iq", _tiny(tmp_path, env="pendulum", policy="gaussian", **{"policy.scaled": "true"}))
    with pytest.raises(ValueError, match="policy.scaled=true"):
        iq.train(cfg)
    bounds = {"loss.clip_value_min": "0", "loss.clip_value_max": "-1"}
    with pytest.raises(ValueError, match="loss.clip_value_min must be <= loss.clip_value_max"):
        iq.train(compose_config(CONF, "iq", _tiny(tmp_path, env="pendulum", **bounds)))
    assert not (tmp_path / "checkpoint.pt").exists()


@pytest.mark.parametrize("recipe", ["iq", "sac"])  # a choice, not the registry's list: two actor-critic recipes
@pytest.mark.parametrize("override", ["optim.target_update_interval=10", "exploration.eps_end=0.1"])
def test_actor_critic_configs_refuse_q_learning_keys(recipe, override):
    """Polyak targets after every update and a stochastic policy: the actor-critic schema has no
    target-copy interval and no epsilon-greedy schedule, so setting one is an error, not a no-op."""
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException, match=override.split("=")[0].split(".")[-1]):
        compose_config(CONF, recipe, [override])


def test_bad_sac_configs_fail_before_training(tmp_path):
    with pytest.raises(ValueError, match="loss.alpha_init"):
        sac.train(compose_config(CONF, "sac", _tiny(tmp_path, env="pendulum", **{"loss.alpha_init": "0"})))
    with pytest.raises(ValueError, match="Box"):
        sac.train(compose_config(CONF, "sac", _tiny(tmp_path, env="pendulum", **{"env.name": "CartPole-v1"})))
    with pytest.raises(ValueError, match="loss.reward_scale"):
        sac.train(compose_config(CONF, "sac", _tiny(tmp_path, env="pendulum", **{"loss.reward_scale": "0"})))


def _check_run_dir(run_dir: Path, metrics: dict) -> None:
    for name in ("config.yaml", "metrics.json", "learning_curve.png", "checkpoint.pt"):
        assert (run_dir / name).exists(), name
    assert (run_dir / "csv" / "scalars").is_dir()
    assert json.loads((run_dir / "metrics.json").read_text())["frames"] == metrics["frames"]
    assert metrics["status"] == "completed" and metrics["frames"] == 300 and metrics["updates"] == 200
    assert metrics["eval_frames"] == [150, 300] and all(map(torch.isfinite, torch.tensor(metrics["eval_returns"])))
    assert metrics["updates_per_s"] > 0 and metrics["steps_per_s"] > 0


@pytest.mark.parametrize("loss, policy", [("m_iq", "multicategorical"), ("pcl", "gaussian")])
def test_iq_smoke_on_pendulum(tmp_path, loss, policy):
    metrics = iq.train(compose_config(CONF, "iq", _tiny(tmp_path, env="pendulum", loss=loss, policy=policy)))
    _check_run_dir(tmp_path, metrics)
    assert metrics["loss"] == loss and metrics["policy"] == policy
    logged = {p.stem for p in (tmp_path / "csv" / "scalars" / "train").glob("*.csv")}
    assert {"loss", "entropy", "log_pi", "state_value", "implicit_q", "td_error", "episode_return"} <= logged


def test_scaled_softmax_and_clip_reach_the_loss_and_diagnostics_are_logged(tmp_path):
    extra = {"policy.scaled": "true", "loss.clip_value_min": "-0.02", "loss.clip_value_max": "0", "loss.tau": "0.005"}
    metrics = iq.train(compose_config(CONF, "iq", _tiny(tmp_path, env="halfcheetah", **extra)))
    _check_run_dir(tmp_path, metrics)
    scalars = tmp_path / "csv" / "scalars"
    assert {"munchausen_bonus", "clip_fraction"} <= {p.stem for p in (scalars / "train").glob("*.csv")}
    diag = metrics["diagnostics"]
    names = ["log_pi_min", "log_pi_q01", "log_pi_q10", "log_pi_q50", "log_pi_q90", *[f"entropy_dim{j}" for j in range(6)]]
    assert sorted(diag) == sorted(names) and {p.stem for p in (scalars / "diag").glob("*.csv")} == set(names)
    assert diag["log_pi_min"] <= diag["log_pi_q01"] <= diag["log_pi_q10"] <= diag["log_pi_q50"] <= diag["log_pi_q90"] < 0
    # 6 dimensions of 11 bins: every marginal entropy lies in (0, ln 11].
    assert all(0 < diag[f"entropy_dim{j}"] <= math.log(11) + 1e-6 for j in range(6))
    # With the scaled softmax at tau=0.005 the fresh policy is far from uniform and tau ln pi < -0.02
    # on some replayed actions: the clip bites.
    clip_fraction = [float(line.split(",")[-1]) for line in (scalars / "train" / "clip_fraction.csv").read_text().split()[1:]]
    assert max(clip_fraction) > 0


def test_policy_diagnostics_match_an_independent_computation():
    from torchrl.data import Bounded
    from tensordict import TensorDict

    from torchrl_reg.modules.policies import multicategorical_policy

    torch.manual_seed(0)
    policy = multicategorical_policy(3, Bounded(-torch.ones(2), torch.ones(2), shape=(2,)), num_bins=5, num_cells=(8,))
    batch = policy(TensorDict({"observation": torch.randn(200, 3)}, [200]))
    diag = iq.policy_diagnostics(policy, batch)
    log_probs = torch.log_softmax(batch["logits"], -1)
    index = ((batch["action"] + 1) / 2 * 4).round().long()  # grid -1, -0.5, 0, 0.5, 1
    log_pi = log_probs.gather(-1, index.unsqueeze(-1)).squeeze(-1).sum(-1)
    ordered = log_pi.sort().values
    assert diag["log_pi_min"] == pytest.approx(ordered[0].item())
    # Linear interpolation between order statistics (numpy's default quantile): position q * (n - 1).
    for q, key in [(0.1, "log_pi_q10"), (0.5, "log_pi_q50")]:
        pos = q * (len(ordered) - 1)
        lo = int(pos)
        expected = ordered[lo] + (pos - lo) * (ordered[lo + 1] - ordered[lo])
        assert diag[key] == pytest.approx(expected.item(), abs=1e-5)
    entropy = -(log_probs.exp() * log_probs).sum(-1).mean(0)
    assert [diag["entropy_dim0"], diag["entropy_dim1"]] == pytest.approx(entropy.tolist(), abs=1e-6)


def test_sac_smoke_on_pendulum(tmp_path):
    metrics = sac.train(compose_config(CONF, "sac", _tiny(tmp_path, env="pendulum")))
    _check_run_dir(tmp_path, metrics)
    logged = {p.stem for p in (tmp_path / "csv" / "scalars" / "train").glob("*.csv")}
    assert {"loss_actor", "loss_qvalue", "loss_alpha", "alpha", "entropy"} <= logged
    # The return and, beside it, the policy entropy: two 7- and 4-inch panels at 100 dpi.
    assert matplotlib.image.imread(tmp_path / "learning_curve.png").shape[1] == 1100


def test_sac_reward_scale_and_delayed_actor_reach_the_loss(tmp_path, monkeypatch):
    """Dopamine's protocol (``loss.reward_scale=0.1``, ``loss.delay_actor=true``): with the same seed, the
    first update sees the same transitions, so its rewards must be exactly 0.1x those of the unscaled run;
    and the bootstrap then uses a separate, Polyak-averaged copy of the actor."""
    seen = {}

    class SpySACLoss(sac.SACLoss):
        def forward(self, tensordict):
            seen.setdefault(self._tag, tensordict.get(("next", "reward")).clone())
            return super().forward(tensordict)

    monkeypatch.setattr(sac, "SACLoss", SpySACLoss)
    runs = {}
    for tag, extra in (("raw", {}), ("scaled", {"loss.reward_scale": "0.1", "loss.delay_actor": "true"})):
        SpySACLoss._tag = tag
        runs[tag] = sac.train(compose_config(CONF, "sac", _tiny(tmp_path / tag, env="pendulum", **extra)))
    raw, scaled = seen["raw"], seen["scaled"]
    assert raw.shape == (32, 1) and bool((raw < 0).all())  # Pendulum's rewards are negative costs
    torch.testing.assert_close(scaled, 0.1 * raw)
    assert runs["raw"]["status"] == runs["scaled"]["status"] == "completed"
    state = load_checkpoint(tmp_path / "scaled" / "checkpoint.pt")
    assert any("target_actor_network_params" in k for k in _flat_keys(state)), "no target copy of the actor"
    raw_state = load_checkpoint(tmp_path / "raw" / "checkpoint.pt")
    assert not any("target_actor_network_params" in k for k in _flat_keys(raw_state))


def _flat_keys(obj, prefix=""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _flat_keys(v, f"{prefix}{k}.")
    else:
        yield prefix


@pytest.mark.slow
@pytest.mark.parametrize("env", ["halfcheetah", "humanoid"])
def test_iq_smoke_on_mujoco(tmp_path, env):
    metrics = iq.train(compose_config(CONF, "iq", _tiny(tmp_path, env=env)))
    _check_run_dir(tmp_path, metrics)


@pytest.mark.slow
@pytest.mark.parametrize("recipe", [iq, sac], ids=["iq", "sac"])
def test_compiled_update_of_the_mujoco_presets(tmp_path, recipe):
    """The MuJoCo presets compile the update (IQ: one fused graph of policy and value; SAC: around
    its eager backward); a tiny run goes through it and logs finite losses, and compiles each graph once: a
    recompilation (SACLoss registering its target entropy at its first call did it twice) is an error."""
    name = recipe.__name__.split(".")[-1]
    with torch._dynamo.config.patch(error_on_recompile=True):
        metrics = recipe.train(compose_config(CONF, name, _tiny(tmp_path, env="halfcheetah", compile="true")))
    _check_run_dir(tmp_path, metrics)
    losses = (tmp_path / "csv" / "scalars" / "train").glob("loss*.csv")
    values = [float(line.split(",")[1]) for path in losses for line in path.read_text().splitlines() if line]
    assert values and all(map(math.isfinite, values))


@pytest.mark.slow
def test_stopped_and_resumed_run_matches_the_uninterrupted_one(tmp_path):
    """A run stopped at 200 frames and resumed (MuJoCo physics, replay, RNGs, optimizer restored)
    ends exactly where the uninterrupted 300-frame run ends."""
    full = iq.train(compose_config(CONF, "iq", _tiny(tmp_path / "full", env="hopper")))
    part = tmp_path / "part"
    request_stop_at(200)
    stopped = iq.train(compose_config(CONF, "iq", _tiny(part, env="hopper")))
    assert stopped["status"] == "interrupted" and stopped["frames"] == 200
    resumed = iq.train(compose_config(CONF, "iq", _tiny(part, env="hopper")))
    for key in ("frames", "updates", "episodes", "eval_frames", "eval_returns", "final_eval_return", "train_return_mean"):
        assert resumed[key] == full[key] or (key == "train_return_mean" and full[key] != full[key]), key
    a = load_checkpoint(tmp_path / "full" / "checkpoint.pt")["loss_module"]
    b = load_checkpoint(part / "checkpoint.pt")["loss_module"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
