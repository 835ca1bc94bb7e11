"""A resumed state is checked like a new one, and a checkpoint is bounded before it is inflated.

Each crafted checkpoint below is a real one (a tiny m_dqn run, a tiny planning run) with one entry changed and
written again by the library's own writer, so that its checksum and config digest are valid: the resume must
refuse it, naming the entry, and leave the directory as it was.
"""
from __future__ import annotations

import hashlib
import io
import logging
import math
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from recipes import m_dqn, tree_search
from tests.loops.test_planning import TINY as PLANNING, _stop_before_move
from tests.loops.test_planning import compose as planning_config
from tests.run.test_contract import Draws, _config
from tests.run.test_run_safety import _cfg as m_dqn_config
from torchrl_reg.run import (
    CheckpointError,
    Run,
    UntrustedCheckpointError,
    clear_stop,
    load_checkpoint,
    read_checkpoint,
    request_stop_at,
    save_checkpoint,
)
from torchrl_reg.run.checkpoint import MAGIC


@pytest.fixture(autouse=True)
def _no_pending_stop():
    clear_stop()
    yield
    clear_stop()


# -- a training run's state ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A real m_dqn run (prioritized replay) stopped at 120 frames: 10 updates (optimizer moments), an evaluation."""
    run_dir = tmp_path_factory.mktemp("trained")
    request_stop_at(120)
    metrics = m_dqn.train(m_dqn_config(run_dir, "buffer=prioritized"))
    clear_stop()
    assert metrics["status"] == "interrupted" and metrics["updates"] == 10 and len(metrics["eval_returns"]) == 1
    return run_dir


def _first(node: dict, start: str = "") -> tuple[dict, str]:
    """The dict holding the first floating tensor under ``node`` whose key starts with ``start``, and its key there."""
    for key, value in node.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point() and str(key).startswith(start):
            return node, key
        if isinstance(value, dict):
            try:
                return _first(value, start)
            except StopIteration:
                continue
    raise StopIteration


def _set_first(value: float, entry: str, start: str = ""):
    def edit(state: dict) -> None:
        node, key = _first(state[entry], start)
        node[key] = node[key].clone()
        node[key].view(-1)[0] = value
    return edit


def _reward(value: float):
    def edit(state: dict) -> None:
        rows = state["replay_buffer"]["_storage"]["_storage"]
        key = next(k for k in rows if "reward" in str(k))
        rows[key] = rows[key].clone()
        rows[key][3] = value
    return edit


def _entry(path: tuple, value):
    def edit(state: dict) -> None:
        node = state
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value(node[path[-1]]) if callable(value) else value
    return edit


def _tensor_entry(path: tuple, index: int, value: float):
    def edit(state: dict) -> None:
        node = state
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = node[path[-1]].clone()
        node[path[-1]][index] = value
    return edit


TRAINING_CASES = {
    # what the checkpoint entry stands for, checked where the run makes it
    "network weight NaN": (_set_first(math.nan, "loss_module", "value_network_params."), r"loss_module\.value_network_params\..*weight holds nan"),
    "target weight inf": (_set_first(math.inf, "loss_module", "target_value_network_params."), r"loss_module\.target_value_network_params\..*holds inf"),
    "policy weight NaN": (_set_first(math.nan, "policy"), r"policy\..* holds nan"),
    "optimizer moment NaN": (_set_first(math.nan, "optimizer", "exp_avg_sq"), r"optimizer\.state\.0\.exp_avg_sq holds nan"),
    "optimizer second moment negative": (_set_first(-0.5, "optimizer", "exp_avg_sq"),
                                         r"optimizer\.state\[0\]\.exp_avg_sq holds -0\.5 at index \[0(, 0)*\]: a second moment is an average of squared gradients, >= 0"),
    "optimizer step past the updates": (_entry(("optimizer", "state", 0, "step"), lambda step: step + 5),
                                        r"optimizer\.state\[0\]\.step is .*15.*: the optimizer's step count must be a whole number in \[0, 10\], the run's 10 updates"),
    "optimizer step fractional": (_entry(("optimizer", "state", 0, "step"), lambda step: step * 0 + 2.5),
                                  r"optimizer\.state\[0\]\.step is .*2\.5.*: the optimizer's step count must be a whole number"),
    "learning rate NaN": (_entry(("optimizer", "param_groups", 0, "lr"), math.nan), r"optimizer\.param_groups\[0\]\.lr is nan"),
    "stored reward NaN": (_reward(math.nan), r"replay_buffer\..*reward holds nan"),
    "stored reward inf": (_reward(math.inf), r"replay_buffer\..*reward holds inf"),
    "priority NaN": (_tensor_entry(("replay_buffer", "_sampler", "_sum_tree", "leaves"), 0, math.nan), r"replay_buffer\._sampler\._sum_tree.* holds nan"),
    "priority negative": (_tensor_entry(("replay_buffer", "_sampler", "_sum_tree", "leaves"), 0, -1.0), r"replay_buffer\._sampler\._sum_tree holds a negative priority"),
    "buffer length past its rows": (_entry(("replay_buffer", "_storage", "_len"), 10**6), r"replay_buffer: a storage holds 120 rows"),
    "frames negative": (_entry(("frames",), -40), r"frames must be an integer >= 0, got frames=-40"),
    "frames not whole batches": (_entry(("frames",), 121), r"frames must be a multiple of collector\.frames_per_batch=40 in \[0, 240\], got 121"),
    "frames past the run": (_entry(("frames",), 4000), r"frames must be a multiple of collector\.frames_per_batch=40 in \[0, 240\], got 4000"),
    "updates not owed": (_entry(("updates",), 10**9), r"updates must be at most the 10 updates 120 frames are owed"),
    "collector frames": (_entry(("collector", "frames"), 80), r"collector\.frames must be the run's 120 frames, got 80"),
    "carried observation NaN": (_set_first(math.nan, "collector", "observation"), r"collector\.carrier\.observation holds nan"),
    "episode return NaN": (_tensor_entry(("tracker", "returns"), 0, math.nan), r"tracker\.returns\[0\] must be a finite number"),
    "running return inf": (_tensor_entry(("tracker", "running_return"), 0, math.inf), r"tracker\.running_return\[0\] must be a finite number"),
    "episode length 0": (_tensor_entry(("tracker", "lengths"), 0, 0), r"tracker\.lengths\[0\] must be an integer in \[1"),
    "episode ending past the frames": (_tensor_entry(("tracker", "end_frames"), -1, 10**6), r"tracker\.end_frames\[\d+\] must be an integer in \[1, 120\]"),
    "evaluation return inf": (_entry(("eval_returns",), [math.inf]), r"eval_returns\[0\] must be a finite number"),
    "evaluation frame negative": (_entry(("eval_frames",), [-120]), r"eval_frames\[0\] must be an integer in \[0, 120\]"),
    "logged episodes past the episodes": (_entry(("logged_episodes",), 10**6), r"logged_episodes must be at most the \d+ finished episodes"),
    "elapsed NaN": (_entry(("elapsed",), math.nan), r"its 'elapsed' is nan"),
}


@pytest.mark.parametrize("case", list(TRAINING_CASES))
def test_a_crafted_training_checkpoint_is_refused_naming_the_entry(trained, tmp_path, case):
    edit, match = TRAINING_CASES[case]
    run_dir = tmp_path / "run"
    shutil.copytree(trained, run_dir)
    state = load_checkpoint(run_dir / "checkpoint.pt")
    edit(state)
    save_checkpoint(run_dir / "checkpoint.pt", state)  # the library's writer: a valid checksum, the same config digest
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    with pytest.raises(CheckpointError, match=f"checkpoint {run_dir / 'checkpoint.pt'} is refused: {match}"):
        m_dqn.train(m_dqn_config(run_dir, "buffer=prioritized"))
    assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()} == before  # nothing written, no lock


def test_the_real_training_checkpoint_resumes_within_its_bound(trained, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(trained, run_dir)
    assert m_dqn.train(m_dqn_config(run_dir, "buffer=prioritized"))["status"] == "completed"


# -- a planning run's state ----------------------------------------------------------------------------

BATCHED = (*PLANNING, "planner.batch_episodes=2")


@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    """A planning run stopped after its first group (two finished episodes), and one stopped one move into it."""
    finished = tmp_path_factory.mktemp("finished")
    request_stop_at(2)
    assert tree_search.train(planning_config(*BATCHED, f"run_dir={finished}"))["returns"] != []
    clear_stop()
    in_progress = tmp_path_factory.mktemp("in_progress")
    with pytest.MonkeyPatch.context() as patch:
        _stop_before_move(patch, 1)
        tree_search.train(planning_config(*BATCHED, f"run_dir={in_progress}"))
    assert load_checkpoint(in_progress / "checkpoint.pt")["in_progress"]["move"] == 1
    return {"finished": finished, "in_progress": in_progress}


PLANNING_CASES = {
    "finished return NaN": ("finished", _entry(("returns",), lambda r: [math.nan, *r[1:]]), r"returns\[0\] must be a finite number"),
    "finished return inf": ("finished", _entry(("returns",), lambda r: [*r[:-1], math.inf]), r"returns\[1\] must be a finite number"),
    "more episodes than the run plays": ("finished", _entry(("returns",), lambda r: r * 3), r"returns holds 6 episodes, more than episodes=4"),
    "length 0": ("finished", _entry(("lengths",), lambda n: [0, *n[1:]]), r"lengths\[0\] must be an integer in \[1, 10\]"),
    "length past task.max_steps": ("finished", _entry(("lengths",), lambda n: [11, *n[1:]]), r"lengths\[0\] must be an integer in \[1, 10\]"),
    "visit share past 1": ("finished", _entry(("diagnostics", "root_visit_share"), lambda v: [2.0, *v[1:]]),
                           r"diagnostics\.root_visit_share\[0\] must be a finite number in \[0\.0, 1\.0\]"),
    "move -5": ("in_progress", _entry(("in_progress", "move"), -5), r"in_progress\.move must be an integer in \[0, 10\]"),
    "totals NaN": ("in_progress", _entry(("in_progress", "totals"), [math.nan, 0.0]), r"in_progress\.totals\[0\] must be a finite number"),
    "episodes [0, 1000]": ("in_progress", _entry(("in_progress", "episodes"), [0, 1000]),
                           r"in_progress\.episodes must be the group after the 0 finished episodes, \[0, at most 2\]"),
    "episodes of a later group": ("in_progress", _entry(("in_progress", "episodes"), [2, 4]), r"in_progress\.episodes must be the group after"),
    "steps past the move": ("in_progress", _entry(("in_progress", "steps"), [1, 7]), r"in_progress\.steps\[1\] must be an integer in \[0, 1\]"),
    "an ended episode in play": ("in_progress", _entry(("in_progress", "steps"), [1, 0]), r"in_progress\.live must list the episodes in play"),
    "agreements past the moves": ("in_progress", _entry(("in_progress", "agreed"), [5, 0]), r"in_progress\.agreed must be at most each episode's moves"),
    "negative gap": ("in_progress", _entry(("in_progress", "gaps"), [-1.0, 0.0]), r"in_progress\.gaps\[0\] must be a finite number in \[0\.0"),
}


@pytest.mark.parametrize("case", list(PLANNING_CASES))
def test_a_crafted_planning_checkpoint_is_refused_naming_the_entry(planned, tmp_path, case):
    source, edit, match = PLANNING_CASES[case]
    run_dir = tmp_path / "run"
    shutil.copytree(planned[source], run_dir)
    state = load_checkpoint(run_dir / "checkpoint.pt")
    edit(state)
    save_checkpoint(run_dir / "checkpoint.pt", state)
    before = {p.name: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    with pytest.raises(CheckpointError, match=f"checkpoint {run_dir / 'checkpoint.pt'} is refused: {match}"):
        tree_search.train(planning_config(*BATCHED, f"run_dir={run_dir}"))
    assert {p.name: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("source", ["finished", "in_progress"])
def test_the_real_planning_checkpoints_resume(planned, tmp_path, source):
    run_dir = tmp_path / "run"
    shutil.copytree(planned[source], run_dir)
    resumed = tree_search.train(planning_config(*BATCHED, f"run_dir={run_dir}"))
    assert resumed["status"] == "completed" and len(resumed["returns"]) == 4


# -- record sizes, before anything is inflated ---------------------------------------------------------


def _with_checksum(payload: bytes) -> bytes:
    return MAGIC + hashlib.sha256(payload).digest() + payload


def _deflated(state: dict) -> bytes:
    """``torch.save(state)`` with its tensor records deflated: a small file whose records declare far more."""
    plain = io.BytesIO()
    torch.save(state, plain)
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(plain.getvalue())) as source, zipfile.ZipFile(out, "w") as target:
        for record in source.infolist():
            deflated = "/data/" in record.filename
            target.writestr(record.filename, source.read(record), compress_type=zipfile.ZIP_DEFLATED if deflated else zipfile.ZIP_STORED)
    return out.getvalue()


def test_a_small_file_whose_records_declare_a_large_tensor_is_refused_before_it_is_inflated(tmp_path):
    payload = _deflated({"frames": 40, "w": torch.zeros(1 << 22)})  # 16 MiB of zeros declared, a few KiB stored
    assert len(payload) < 100_000
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(_with_checksum(payload))  # its checksum matches: a crafted file, not a damaged one
    message = r"refusing checkpoint .*checkpoint\.pt: its record 'archive/data/0' is compressed \(\d+ bytes declaring 16777216"
    with pytest.raises(UntrustedCheckpointError, match=message):
        load_checkpoint(path)
    with pytest.raises(UntrustedCheckpointError, match=message):
        read_checkpoint(path)
    legacy = tmp_path / "legacy" / "checkpoint.pt"  # without the header too
    legacy.parent.mkdir()
    legacy.write_bytes(payload)
    with pytest.raises(UntrustedCheckpointError, match="is compressed"):
        load_checkpoint(legacy)


def test_records_declaring_more_than_the_file_holds_are_refused_as_corrupt(tmp_path):
    plain = io.BytesIO()
    torch.save({"w": torch.zeros(64)}, plain)
    data = bytearray(plain.getvalue())
    entry = data.find(b"PK\x01\x02")  # the first central directory entry
    data[entry + 20:entry + 28] = (1 << 31).to_bytes(4, "little") * 2  # its compressed and inflated sizes: 2 GiB
    path = tmp_path / "lone" / "checkpoint.pt"
    path.parent.mkdir()
    path.write_bytes(_with_checksum(bytes(data)))
    with pytest.raises(CheckpointError, match=r"is corrupt: its record 'archive/data\.pkl' declares 2147483648 bytes at "
                                              r"offset \d+, past the end of the \d+-byte file"):
        read_checkpoint(path)


def test_records_past_the_bound_the_config_implies_are_refused(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"frames": 40, "w": torch.zeros(1000)})
    assert load_checkpoint(path, max_bytes=8000)["frames"] == 40
    with pytest.raises(UntrustedCheckpointError, match=r"records declare \d+ bytes, more than the 1000 bytes a checkpoint "
                                                       "of this run's config can hold"):
        load_checkpoint(path, max_bytes=1000)


def _saved(state: dict) -> bytes:
    plain = io.BytesIO()
    torch.save(state, plain)
    return plain.getvalue()


def test_a_tensor_declaring_more_than_its_record_holds_is_refused_before_it_is_used(tmp_path):
    """torch.save keeps an expanded view as its shape and a stride of 0 over the one element it stores: a file of a
    few KiB, its records within the file and the bound, whose tensor declares 32 GiB that its first isfinite or copy
    would allocate. Refused when read, naming the entry and both sizes; a slice of a larger storage is read."""
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(_with_checksum(_saved({"frames": 40, "policy": {"w": torch.zeros(1).expand(1 << 33)}})))
    assert path.stat().st_size < 10_000
    message = (r"refusing checkpoint .*checkpoint\.pt: its entry checkpoint\['policy'\]\['w'\] declares 34359738368 bytes "
               r"\(shape \[8589934592\], strides \[0\], torch.float32\) over the 4 bytes its storage holds")
    with pytest.raises(UntrustedCheckpointError, match=message):
        read_checkpoint(path, max_bytes=10_000)
    with pytest.raises(UntrustedCheckpointError, match=message):
        load_checkpoint(path)
    path.write_bytes(_with_checksum(_saved({"w": torch.zeros(3).to_sparse()})))
    with pytest.raises(UntrustedCheckpointError, match=r"its entry checkpoint\['w'\] is a torch.sparse_coo tensor"):
        read_checkpoint(path)
    path.write_bytes(_with_checksum(_saved({"w": torch.arange(10.0)[2:5]})))  # a view within its storage
    assert read_checkpoint(path)["w"].tolist() == [2.0, 3.0, 4.0]


def test_tensors_declaring_more_than_the_bound_together_are_refused(tmp_path):
    """Three views of one 4000-byte storage: a record of 4000 bytes, 12000 declared together."""
    path = tmp_path / "checkpoint.pt"
    shared = torch.zeros(1000)
    path.write_bytes(_with_checksum(_saved({"a": shared, "b": shared[:], "c": shared.view(10, 100)})))
    assert set(read_checkpoint(path, max_bytes=12_000)) == {"a", "b", "c"}
    with pytest.raises(UntrustedCheckpointError, match=r"its tensors declare 12000 bytes together \(views of one storage "
                                                       r"counted each time\), more than the 8000 bytes"):
        read_checkpoint(path, max_bytes=8000)


class _SmallDraws(Draws):
    """A state whose checkpoints hold a few numbers: 64 KiB at most."""

    def checkpoint_bytes(self) -> int:
        return 1 << 16


def test_a_resume_bounds_the_checkpoint_by_its_state(tmp_path):
    request_stop_at(2)
    run = Run.open(_config(tmp_path), _SmallDraws())
    run.start()
    run.state.values += [0.5, 0.25]
    run.interrupt()
    run.finish({"frames": 2})
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    resumed = Run.open(_config(tmp_path), _SmallDraws())
    resumed.start()  # within the bound
    resumed.finish({"frames": 2})
    save_checkpoint(tmp_path / "checkpoint.pt", {**state, "padding": torch.zeros(1 << 15)})  # 128 KiB
    with pytest.raises(UntrustedCheckpointError, match="more than the 65536 bytes"):
        Run.open(_config(tmp_path), _SmallDraws()).start()


# -- no unverified fallback ----------------------------------------------------------------------------


def _flip(data: bytes, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    flipped = bytearray(data)
    flipped[int(rng.integers(100, len(data)))] ^= 1 << int(rng.integers(0, 8))
    return bytes(flipped)


def _pre_checksum(path: Path, state: dict) -> None:
    """A checkpoint as written before checksums: a bare ``torch.save`` zip."""
    save_checkpoint(path, state)
    path.write_bytes(path.read_bytes()[len(MAGIC) + 32:])


def test_a_pre_checksum_previous_checkpoint_is_not_trusted_beside_a_damaged_current_one(tmp_path, caplog):
    path, previous = tmp_path / "checkpoint.pt", tmp_path / "checkpoint.prev.pt"
    _pre_checksum(previous, {"frames": 40, "w": torch.arange(100.0)})
    previous.write_bytes(_flip(previous.read_bytes(), 0))  # one bit off, nothing to tell
    path.write_bytes(b"\0" * 4096)  # the current one zeroed: its header, if it had one, is gone
    with pytest.raises(CheckpointError, match=f"checkpoint {previous} is refused: it carries no checksum while {path} "
                                              r"beside it is damaged \(it may have had one\)"):
        load_checkpoint(path)
    path.unlink()  # the current one missing: nothing shows the directory predates checksums
    with pytest.raises(CheckpointError, match=f"checkpoint {previous} is refused as a fallback: it carries no checksum"):
        load_checkpoint(path)
    assert previous.exists()


def test_a_directory_older_than_checksums_still_falls_back_unverified(tmp_path, caplog):
    path, previous = tmp_path / "checkpoint.pt", tmp_path / "checkpoint.prev.pt"
    _pre_checksum(previous, {"frames": 40})
    _pre_checksum(path, {"frames": 80})
    path.write_bytes(path.read_bytes()[:200])  # a bare zip cut short: this directory's checkpoints had no checksum
    with caplog.at_level(logging.WARNING):
        assert load_checkpoint(path)["frames"] == 40
    assert "trusting it unverified" in caplog.text


def test_a_planning_network_with_a_nan_weight_is_refused(tmp_path):
    from torchrl_reg.configs import compose_config
    from torchrl_reg.loops.planning import load_q_network
    from torchrl_reg.planning import make_task

    network = tmp_path / "Breakout_seed0"
    shutil.copytree(Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "planning" / "networks" / "Breakout_seed0", network)
    cfg = compose_config(Path(tree_search.__file__).parent / "conf", "tree_search",
                         ["task.name=minatar", "task.game=breakout", "task.sticky_action_prob=0.1"])
    sim, _ = make_task(cfg.task, 0)
    load_q_network(network / "checkpoint.pt", sim, "breakout")  # as committed
    state = load_checkpoint(network / "checkpoint.pt")
    _set_first(math.nan, "policy")(state)
    save_checkpoint(network / "checkpoint.pt", state)
    with pytest.raises(ValueError, match=rf"evaluator.checkpoint {network / 'checkpoint.pt'} is refused: its policy\..* holds nan"):
        load_q_network(network / "checkpoint.pt", sim, "breakout")


def test_a_key_added_since_for_another_option_is_no_change_and_a_read_one_is(tmp_path):
    """A config.yaml written before ``loss.q`` existed (MVI(q)'s entropic index, read only under ``loss.name=mvi_q``)
    resumes an M-DQN run: the key is unread there, so its absence cannot change a trained number. A key the run reads
    that the stored config lacks is still refused, naming it; and the sweep's check of its recorded task configs
    follows the same rule."""
    from omegaconf import OmegaConf

    from torchrl_reg.run.rundir import resume_changes, unread_in

    m_dqn.validate(m_dqn_config(tmp_path))  # the schema registered
    cfg = m_dqn.validate(m_dqn_config(tmp_path))
    new = OmegaConf.to_container(cfg, resolve=True)
    assert "loss.q" in unread_in(new, cfg) and "loss.alpha" not in unread_in(new, cfg)
    older = {**new, "loss": {k: v for k, v in new["loss"].items() if k != "q"}}
    assert resume_changes(older, new, cfg) == []
    stripped = {**new, "loss": {k: v for k, v in new["loss"].items() if k != "alpha"}}
    assert resume_changes(stripped, new, cfg) == [f"loss.alpha: '<absent>' -> {new['loss']['alpha']}"]
    mvi = m_dqn.validate(m_dqn_config(tmp_path, "loss=mvi_q"))
    new_mvi = OmegaConf.to_container(mvi, resolve=True)
    assert "loss.q" not in unread_in(new_mvi, mvi)
    assert resume_changes({**new_mvi, "loss": {k: v for k, v in new_mvi["loss"].items() if k != "q"}}, new_mvi, mvi)


def test_a_sweep_recorded_before_a_key_was_added_for_another_option_resumes(tmp_path):
    from torchrl_reg.sweep.spec import Recipe, check_recorded_configs, plan_tasks

    recipe = Recipe.from_path(Path(m_dqn.__file__))
    tasks, _ = plan_tasks(recipe, ["env=cartpole", "loss=dqn,m_dqn"], tmp_path)
    recorded = [{"index": i, "overrides": list(t.overrides), "run_dir": str(t.run_dir),
                 "config": {**t.config, "loss": {k: v for k, v in t.config["loss"].items() if k != "q"}}}
                for i, t in enumerate(tasks)]
    check_recorded_configs(recipe, recorded)  # loss.q is read by neither dqn nor m_dqn
    recorded[1]["config"]["loss"].pop("alpha")
    with pytest.raises(Exception, match=r"task 1 .*config.loss.alpha is '<absent>'"):
        check_recorded_configs(recipe, recorded)


def test_a_run_written_before_a_key_was_added_for_another_option_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    """A run of loss=dqn whose config.yaml and checkpoint were written without ``loss.q`` (digested without it, as the
    code before MVI(q) did) resumes with a larger budget; its checkpoint is still refused for a run of another seed."""
    import yaml

    from torchrl_reg.run import contract, rundir

    run_dir = tmp_path / "run"
    with monkeypatch.context() as m:  # the code before the key: its digest never saw loss.q
        m.setattr(contract, "config_digest", lambda cfg, leave_out=(): rundir.config_digest(cfg, {"loss.q"}))
        assert m_dqn.train(m_dqn_config(run_dir, "loss=dqn"))["status"] == "completed"
    stored = yaml.safe_load((run_dir / "config.yaml").read_text())
    del stored["loss"]["q"]
    (run_dir / "config.yaml").write_text(yaml.safe_dump(stored))
    frames = stored["collector"]["total_frames"] + stored["collector"]["frames_per_batch"]
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    out = m_dqn.train(m_dqn_config(run_dir, "loss=dqn", f"collector.total_frames={frames}"))
    assert out["status"] == "completed" and out["frames"] == frames
    stored["seed"] += 1  # the same checkpoint under another seed's config.yaml: still another run's checkpoint
    (copy / "config.yaml").write_text(yaml.safe_dump(stored))
    with pytest.raises(Exception, match="written by a run of another config"):
        m_dqn.train(m_dqn_config(copy, "loss=dqn", f"seed={stored['seed']}", f"collector.total_frames={frames}"))
