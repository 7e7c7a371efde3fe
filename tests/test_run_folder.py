"""A run folder as a small database (issue "a run folder that never lies"): divergence stops
before anything non-finite is written, rotation by step, one identity per run, one writer,
stop signals end in a final checkpoint, and the command line's failures are one line."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import load_recipe
from test_data import write_fashion
from test_recipes_training import tiny
from test_training_state import TINY
from training_helpers import make_trainer

from sdekit.errors import InputError
from sdekit.experiments import train
from sdekit.files import load_checkpoint
from sdekit.training.checkpoint import CheckpointFolder, restore_generator
from sdekit.training.guards import DivergenceError, StopSignals
from sdekit.training.run_folder import (
    RunFolderLostError,
    RunLock,
    RunLockedError,
    clear_run,
    config_differences,
)


def _finite(state) -> bool:
    return all(bool(torch.isfinite(v).all()) for v in state.values() if v.is_floating_point())


# ------------------------------------------------------------------ divergence (case 2)
def test_a_diverging_run_stops_before_writing_anything_non_finite(tmp_path):
    trainer = make_trainer(tmp_path, steps=12, ckpt_every=2, keep_checkpoints=2)
    trainer.fit(4)  # good checkpoints at steps 2 and 4
    before = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    # a learning-rate spike: the next steps blow the weights up
    for group in trainer.optimizer.param_groups:
        group["lr"] = 1e30
    trainer.scheduler.base_lrs = [1e30] * len(trainer.scheduler.base_lrs)
    with pytest.raises(DivergenceError, match="diverged"):
        trainer.fit()
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == before
    for name in before:
        state = load_checkpoint(tmp_path / "checkpoints" / name)
        assert state["step"] in (2, 4) and _finite(state["model"]) and _finite(state["ema"])
    rows = [json.loads(r) for r in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert rows and all(isinstance(r["loss"], float) for r in rows)  # strict JSON: no NaN


def test_a_non_finite_weight_is_refused_at_the_checkpoint(tmp_path):
    trainer = make_trainer(tmp_path, steps=2)
    with torch.no_grad():
        next(trainer.model.parameters())[0] = float("nan")
    with pytest.raises(DivergenceError, match="non-finite value"):
        trainer.save_checkpoint()
    assert not (tmp_path / "checkpoints").exists()


# ---------------------------------------------------------- rotation by step (case 3)
def test_rotation_goes_by_step_and_drops_an_abandoned_future(tmp_path):
    folder = CheckpointFolder(tmp_path, keep=2)
    for step in (5, 10, 100, 1000):
        folder.save({"step": step}, step)
    assert [s for s, _ in folder.step_files()] == [1000, 100]
    # a resume from step 100's file that writes step 200: step 1000 belongs to a lost future
    folder.save({"step": 200}, 200)
    assert [s for s, _ in folder.step_files()] == [200, 100]
    # names that sort otherwise (no zero padding) still rotate by their number
    (tmp_path / "step99.pt").write_bytes(b"")
    assert [s for s, _ in folder.step_files()] == [200, 100, 99]


# ------------------------------------------------- identity and --no-resume (cases 3, 4)
def test_resuming_with_another_configuration_is_refused_with_the_keys(tmp_path):
    run = tmp_path / "run"
    train(copy.deepcopy(TINY), run, device="cpu")
    changed = copy.deepcopy(TINY)
    changed["noise"] = "isotropic"
    changed["train"]["lr"] = 1e-5
    with pytest.raises(InputError, match=r"noise: 'gff' → 'isotropic'.*train\.lr"):
        train(changed, run, device="cpu")
    assert json.loads((run / "config.json").read_text())["noise"] == "gff"  # written once
    longer = copy.deepcopy(TINY)
    longer["train"]["steps"] = 5  # the length may change
    assert train(longer, run, device="cpu").step == 5


def test_config_differences_read_absent_keys_as_their_defaults():
    old = {"noise": "gff", "train": {"lr": 1e-3}}
    new = {"noise": "gff", "train": {"lr": 1e-3, "label_dropout": 0.1}, "conditional": False}
    defaults = {"train.label_dropout": 0.1, "conditional": False}
    assert config_differences(old, new, defaults) == []
    assert config_differences(old, {**new, "conditional": True}, defaults) == [
        "conditional: False → True"
    ]


def test_no_resume_over_a_run_is_refused_unless_archived_or_removed(tmp_path):
    run = tmp_path / "run"
    train(copy.deepcopy(TINY), run, device="cpu")
    old = load_checkpoint(run / "checkpoints" / "latest.pt")["model"]
    with pytest.raises(InputError, match="already holds a run"):
        train(copy.deepcopy(TINY), run, resume=False, device="cpu")
    iso = copy.deepcopy(TINY)
    iso["noise"] = "isotropic"
    train(iso, run, resume=False, device="cpu", old_run="archive")
    archived = [p for p in tmp_path.iterdir() if p.name.startswith("run.archived-")]
    assert len(archived) == 1
    assert json.loads((archived[0] / "config.json").read_text())["noise"] == "gff"
    kept = load_checkpoint(archived[0] / "checkpoints" / "latest.pt")["model"]
    assert all(torch.equal(kept[k], old[k]) for k in old)
    assert json.loads((run / "config.json").read_text())["noise"] == "isotropic"
    train(copy.deepcopy(TINY), run, resume=False, device="cpu", old_run="remove")
    assert json.loads((run / "config.json").read_text())["noise"] == "gff"
    assert len([p for p in tmp_path.iterdir() if "archived" in p.name]) == 1
    assert not (run / ".lock").exists()


def test_clear_run_refuses_a_symlinked_folder(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "config.json").write_text("{}")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(InputError, match="symbolic link"):
        clear_run(tmp_path / "link", "remove")
    assert (tmp_path / "real" / "config.json").exists()


# ------------------------------------------------------------------- the lock (case 5)
def test_a_second_writer_is_refused_and_a_dead_ones_lock_is_taken_over(tmp_path, caplog):
    with RunLock(tmp_path, "train"):
        with pytest.raises(RunLockedError, match=rf"process {os.getpid()}"):
            RunLock(tmp_path, "evaluate").acquire()
        with pytest.raises(RunLockedError, match="in use"):
            train(copy.deepcopy(TINY), tmp_path, device="cpu")
    assert not (tmp_path / ".lock").exists()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    import socket

    (tmp_path / ".lock").write_text(json.dumps(
        {"pid": int(dead.stdout), "host": socket.gethostname(), "since": time.time()}
    ))  # fmt: skip
    with RunLock(tmp_path, "train") as lock:
        assert json.loads(lock.path.read_text())["pid"] == os.getpid()
    assert "which is gone" in caplog.text
    # a live pid that is not the holder: it started at another time, or before a reboot
    for stale in ({"start": "1"}, {"boot": "another-boot"}):
        holder = {"pid": 1, "host": socket.gethostname(), "since": time.time(), **stale}
        (tmp_path / ".lock").write_text(json.dumps(holder))
        with RunLock(tmp_path, "train"):
            pass
    holder = {"pid": os.getpid(), "host": "elsewhere", "since": time.time()}
    (tmp_path / ".lock").write_text(json.dumps(holder))  # another host: cannot be checked
    with pytest.raises(RunLockedError, match="on elsewhere"):
        RunLock(tmp_path, "train").acquire()


def _snapshot(root) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("change", ["removed", "replaced by a copy", "taken over"])
def test_a_run_folder_changed_under_its_writer_stops_it_before_any_write(tmp_path, change):
    import shutil

    run_dir = tmp_path / "run"
    with RunLock(run_dir, "train") as lock:
        trainer = make_trainer(run_dir, steps=4, log_every=1, run_lock=lock)
        trainer.fit(2)  # writes as usual while the lock is its own
        assert (run_dir / "checkpoints" / "latest.pt").exists()
        if change == "removed":
            shutil.rmtree(run_dir)
        elif change == "replaced by a copy":  # the same files, the lock's text included
            shutil.copytree(run_dir, tmp_path / "copy")
            shutil.rmtree(run_dir)
            (tmp_path / "copy").rename(run_dir)
        else:
            holder = {"pid": os.getpid() + 1, "host": "elsewhere", "since": time.time()}
            (run_dir / ".lock").unlink()
            (run_dir / ".lock").write_text(json.dumps(holder))
        before = _snapshot(tmp_path)
        with pytest.raises(RunFolderLostError, match="changed under this process"):
            trainer.fit(4)
        assert _snapshot(tmp_path) == before  # no file created, changed or removed
    # release() leaves a lock that is not its own alone
    assert (run_dir / ".lock").exists() == (change != "removed")


def test_a_trainer_without_a_lock_and_a_disabled_lock_never_check(tmp_path):
    import shutil

    lock = RunLock(tmp_path / "run", "train", enabled=False).acquire()
    lock.verify()  # a no-op: never taken
    trainer = make_trainer(tmp_path / "run", steps=2)
    trainer.fit(1)
    shutil.rmtree(tmp_path / "run")
    trainer.fit(2)  # the library's Trainer on its own keeps its old behaviour
    assert (tmp_path / "run" / "checkpoints" / "latest.pt").exists()


def test_a_sample_grid_checks_the_folder_after_sampling_before_writing(tmp_path):
    run_dir = tmp_path / "run"
    with RunLock(run_dir, "train") as lock:
        trainer = make_trainer(run_dir, steps=1, run_lock=lock)
        (run_dir / ".lock").unlink()  # the folder lost while the grid was being sampled
        with pytest.raises(RunFolderLostError):
            trainer.sample_grid(run_dir / "samples" / "grid.png", n=2, steps=2)
    assert not (run_dir / "samples").exists()


def test_evaluate_holds_the_lock(tmp_path):
    from sdekit.experiments import evaluate_run
    from sdekit.sampling import SamplingSpec

    with RunLock(tmp_path, "train"):
        with pytest.raises(RunLockedError):
            evaluate_run(tmp_path, [SamplingSpec(n=4)])


# ------------------------------------------------------------- stop signals (case 11)
def test_a_stop_signal_ends_in_a_final_checkpoint(tmp_path):
    trainer = make_trainer(tmp_path, steps=50)
    calls = {"n": 0}
    step = trainer.train_step

    def step_and_signal():
        calls["n"] += 1
        if calls["n"] == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return step()

    trainer.train_step = step_and_signal
    from sdekit.training.guards import TrainingInterrupted

    with pytest.raises(TrainingInterrupted, match="SIGTERM at step 3"):
        trainer.fit()
    assert load_checkpoint(tmp_path / "checkpoints" / "latest.pt")["step"] == 3
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored


def test_stop_signals_twice_sigint_interrupts_at_once():
    with StopSignals() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.signum == signal.SIGINT
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)


def test_ctrl_c_on_the_command_line_is_one_line_and_resumable(tmp_path):
    cfg = copy.deepcopy(TINY)
    cfg["train"].update(steps=100_000, ckpt_every=100_000)
    script = (
        "import json, sys; from sdekit.experiments.cli import run_recipe\n"
        "preset = json.loads(sys.argv[1]); preset['_about'] = 'test'\n"
        "sys.exit(run_recipe('t', {'p': preset}, 'synthetic', "
        "['train', '--run-dir', sys.argv[2], '--no-progress', '--device', 'cpu']))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, json.dumps(cfg), str(tmp_path / "r")],
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    metrics = tmp_path / "r" / "metrics.jsonl"
    deadline = time.time() + 120
    while not (metrics.exists() and metrics.read_text().strip()) and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    lines = [x for x in err.splitlines() if not x[:4].isdigit()]  # drop log lines
    assert len(lines) == 1 and lines[0].startswith("error: training stopped by SIGINT")
    assert load_checkpoint(tmp_path / "r" / "checkpoints" / "latest.pt")["step"] > 0
    assert not (tmp_path / "r" / ".lock").exists()


# ------------------------------------------------------- the command line (case 11)
def _recipe_args(tmp_path, run):
    data = tmp_path / "fm"
    if not data.exists():
        write_fashion(data, n=16)
    return ["--preset", "smoke", "--data-dir", str(data), "--run-dir", str(run), "--no-progress"]


@pytest.mark.parametrize(
    "case", ["run-dir-is-a-file", "read-only", "huge-seed", "torn-metrics", "disk-full"]
)
def test_command_line_failures_are_one_error_line(tmp_path, capsys, monkeypatch, case):
    r = tiny(load_recipe("fashion_mnist_nivp"), "smoke")
    run = tmp_path / "run"
    extra = []
    if case == "run-dir-is-a-file":
        run.write_text("not a folder")
    elif case == "read-only":
        if os.geteuid() == 0:
            pytest.skip("root ignores file permissions")
        run.mkdir()
        run.chmod(0o500)
    elif case == "huge-seed":
        extra = ["--seed", "20000000000000"]
    elif case == "disk-full":
        import errno

        from sdekit import files

        def full(fd):
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(files.os, "fsync", full)
    elif case == "torn-metrics":
        assert r.run_recipe("t", r.PRESETS, "fashion_mnist", ["train", *_recipe_args(tmp_path, run)]) == 0
        with open(run / "metrics.jsonl", "a") as f:
            f.write('{"step": 2, "lo')  # a crash mid-line, then a second torn row before it
        text = (run / "metrics.jsonl").read_text().splitlines()
        (run / "metrics.jsonl").write_text("\n".join([text[0], '{"torn', *text[1:]]) + "\n")
        capsys.readouterr()
    code = r.run_recipe("t", r.PRESETS, "fashion_mnist",
                        ["train", *_recipe_args(tmp_path, run), *extra])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ")
    expected = {"run-dir-is-a-file": str(run), "read-only": str(run), "huge-seed": "seed",
                "torn-metrics": "metrics.jsonl, line 2",
                "disk-full": "config.json: No space left on device"}[case]  # fmt: skip
    assert expected in err[0]
    if case == "huge-seed":
        assert not run.exists()  # refused before anything was written


def test_a_torn_last_metrics_line_is_dropped_on_resume(tmp_path, caplog):
    trainer = make_trainer(tmp_path, steps=4)
    trainer.fit()
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 6, "lo')
    resumed = make_trainer(tmp_path, steps=6)
    assert resumed.resume_if_possible()
    resumed.fit()
    rows = [json.loads(r) for r in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4, 6] and "torn last line" in caplog.text


# ------------------------------------------------------------ another device (case 13)
def test_a_generator_state_of_another_device_type_reseeds_with_a_warning(caplog):
    g = torch.Generator()
    cuda_like = torch.zeros(16, dtype=torch.uint8)  # a CUDA (Philox) state is 16 bytes
    restore_generator(g, cuda_like, 1234, "ckpt.pt")
    assert torch.equal(g.get_state(), torch.Generator().manual_seed(1234).get_state())
    assert "another device type" in caplog.text
    same = torch.Generator().manual_seed(7)
    restore_generator(g, same.get_state(), 0, "ckpt.pt")
    assert torch.equal(g.get_state(), same.get_state())


def test_a_cuda_checkpoint_resumes_on_cpu(tmp_path):
    trainer = make_trainer(tmp_path, steps=2)
    trainer.fit()
    path = tmp_path / "checkpoints" / "latest.pt"
    state = load_checkpoint(path)
    state["noise_gen"] = torch.zeros(16, dtype=torch.uint8)
    state["rng_cuda"] = torch.zeros(16, dtype=torch.uint8)
    torch.save(state, path)
    resumed = make_trainer(tmp_path, steps=4)
    assert resumed.resume_if_possible() and resumed.step == 2
    resumed.fit()
    assert resumed.step == 4


# ----------------------------------------------------------- the download (case 9)
def test_the_fashion_mnist_download_is_checksummed(tmp_path, monkeypatch):
    from sdekit.data import fashion_mnist
    from sdekit.data.common import DatasetError

    def fake(url, target):
        with open(target, "wb") as f:
            f.write(b"not the official file")

    monkeypatch.setattr(fashion_mnist.urllib.request, "urlretrieve", fake)
    monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", tmp_path / "no-debian")
    with pytest.raises(DatasetError, match="not the official file"):
        fashion_mnist.find_fashion_mnist(tmp_path / "d" if (tmp_path / "d").mkdir() is None else None)
    assert list((tmp_path / "d").iterdir()) == []


def test_bits_per_dim_names_a_bad_generator_before_drawing_from_it():
    from sdekit import NIVPSDE, GFFCovariance, bits_per_dim
    from sdekit.errors import InputTypeError

    sde = NIVPSDE(GFFCovariance((1, 4, 4)))
    images = torch.zeros(2, 1, 4, 4, dtype=torch.uint8)
    with pytest.raises(InputTypeError, match="generator must be a torch.Generator"):
        bits_per_dim(sde, lambda x, t: torch.zeros_like(x), images, generator=0)


def test_weights_digest_reads_channels_last_weights_like_contiguous_ones():
    """A run trained with --channels-last saves 1×1-conv weights whose last stride is not 1
    although they count as contiguous; the digest (the run's identity for evaluate) must
    read them, and give the same digest as the same values in the default layout."""
    from sdekit.experiments.runs import weights_digest

    torch.manual_seed(0)
    state = {"conv1x1": torch.randn(8, 4, 1, 1), "conv3x3": torch.randn(8, 4, 3, 3)}
    cl = {k: v.to(memory_format=torch.channels_last) for k, v in state.items()}
    assert cl["conv1x1"].stride(-1) != 1
    assert weights_digest(cl) == weights_digest(state)
    assert weights_digest({**state, "conv1x1": state["conv1x1"] + 1}) != weights_digest(state)
