"""Class-conditional training: labels reach the net, label dropout, the recipe flag."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import load_recipe as load
from test_data import write_fashion
from test_recipes_training import tiny
from training_helpers import SHAPE

from sdekit import NIVPSDE, GFFCovariance
from sdekit.data import ImageDataset, gaussian_field_dataset
from sdekit.errors import InputError
from sdekit.models import UNet, model_num_classes
from sdekit.training import TrainConfig, Trainer
from sdekit.training.losses import drop_labels


class LabelRecorder(torch.nn.Module):
    """A conditional 'net' that records the labels of every call (num_classes = 3)."""

    num_classes = 3

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))
        self.seen = []

    def forward(self, x, t, y=None):
        self.seen.append((x.detach().clone(), y.clone()))
        return x * self.w


def test_trainer_passes_labels_with_dropout_and_resumes_the_same(tmp_path):
    from sdekit.data import BatchStream

    g = torch.Generator().manual_seed(3)
    data = ImageDataset(torch.randint(0, 256, (24, *SHAPE), generator=g, dtype=torch.uint8),
                        torch.arange(24) % 3)  # fmt: skip
    sde = NIVPSDE.from_betas(GFFCovariance(SHAPE), torch.linspace(1e-4, 0.02, 1000))
    cfg = TrainConfig(steps=40, batch_size=8, warmup=1, label_dropout=0.25, progress=False,
                      log_every=10, ckpt_every=1000, ema_decay=0.9)  # fmt: skip
    net = LabelRecorder()
    Trainer(sde, net, data, cfg, tmp_path / "a", device="cpu").fit()
    assert len(net.seen) == 40
    stream, dropped = BatchStream(data, 8, seed=cfg.seed), 0
    for _, y in net.seen:
        _, truth = stream.next_labelled()
        assert y.dtype == torch.long and y.shape == (8,)
        kept = y != 3  # the null label
        assert torch.equal(y[kept], truth[kept])
        dropped += int((~kept).sum())
    assert 50 <= dropped <= 110  # P(drop) = 0.25 of 320 labels: 80 expected, sd ≈ 7.7
    # interrupted at step 20 and resumed: the same labels, dropped the same way
    first = LabelRecorder()
    Trainer(sde, first, data, cfg, tmp_path / "b", device="cpu").fit(20)
    second = LabelRecorder()
    resumed = Trainer(sde, second, data, cfg, tmp_path / "b", device="cpu")
    assert resumed.resume_if_possible() and resumed.step == 20
    resumed.fit()
    labels = [y for _, y in first.seen + second.seen]
    assert all(torch.equal(a, b) for a, b in zip(labels, [y for _, y in net.seen], strict=True))


def test_labels_pair_with_their_images():
    """The stream's labels are the labels of the images it returns, across epochs
    (synthetic images are labelled by the sign of their mean brightness)."""
    from sdekit.data import BatchStream

    data = gaussian_field_dataset(40, SHAPE)
    stream = BatchStream(data, 8, seed=1)
    for _ in range(7):  # across an epoch boundary
        x, y = stream.next_labelled()
        brightness = ((x + 1) * 127.5).round().flatten(1).mean(1)
        assert torch.equal(y, (brightness > 127.5).long())
    assert 0 < int(data.labels.sum()) < 40  # both classes occur


def test_label_dropout_is_the_global_batch_shard():
    """Two ranks drop exactly what one process drops on the global batch."""
    labels = torch.arange(12) % 4
    one = drop_labels(labels, 0.5, 4, torch.Generator().manual_seed(0), rank=0, world_size=1)
    halves = [
        drop_labels(labels[6 * r : 6 * r + 6], 0.5, 4, torch.Generator().manual_seed(0),
                    rank=r, world_size=2)  # fmt: skip
        for r in range(2)
    ]
    assert torch.equal(one, torch.cat(halves))
    assert torch.equal(drop_labels(labels, 0.0, 4, torch.Generator(), rank=0, world_size=1), labels)
    all_null = drop_labels(labels, 1.0, 4, torch.Generator(), rank=0, world_size=1)
    assert torch.equal(all_null, torch.full_like(labels, 4))


def test_conditional_model_needs_labelled_data(tmp_path):
    sde = NIVPSDE.from_betas(GFFCovariance(SHAPE), torch.linspace(1e-4, 0.02, 1000))
    unlabelled = ImageDataset(torch.zeros(8, *SHAPE, dtype=torch.uint8))
    with pytest.raises(InputError, match="no labels"):
        Trainer(sde, LabelRecorder(), unlabelled, TrainConfig(batch_size=4), tmp_path, "cpu")
    with pytest.raises(InputError, match="label_dropout"):
        TrainConfig(label_dropout=1.5)


def test_unet_label_embedding_conditions_the_output():
    torch.manual_seed(0)
    net = UNet(1, 8, ch=8, ch_mult=(1,), num_res_blocks=1, attn_resolutions=(), groups=4,
               num_classes=3)  # fmt: skip
    for p in net.parameters():  # the output convs are zero-initialised: make labels visible
        if not p.any():
            torch.nn.init.normal_(p, std=0.1)
    net.eval()
    assert model_num_classes(net) == 3 and net.label_emb.num_embeddings == 4
    x, t = torch.randn(1, 1, 8, 8).expand(4, 1, 8, 8), torch.full((4,), 0.5)
    out = net(x, t, y=torch.tensor([0, 1, 3, 0]))
    assert torch.equal(out[0], out[3])  # the label alone decides the row
    assert (out[0] - out[1]).abs().max() > 1e-3 and (out[0] - out[2]).abs().max() > 1e-3
    with pytest.raises(InputError, match="num_classes"):
        UNet(1, 8, num_classes=-1)


def test_recipe_conditional_flag_records_and_rebuilds(tmp_path, capsys):
    data, run = tmp_path / "fm", tmp_path / "run"
    write_fashion(data, n=16)
    r = tiny(load("fashion_mnist_nivp"), "smoke")
    args = ["--preset", "smoke", "--data-dir", str(data), "--run-dir", str(run), "--no-progress"]
    assert r.run_recipe("t", r.PRESETS, "fashion_mnist",
                        ["train", *args, "--conditional", "--label-dropout", "0.2"]) == 0  # fmt: skip
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["conditional"] is True and cfg["train"]["label_dropout"] == 0.2
    from sdekit.experiments.runs import load_trained

    _, _, model = load_trained(run, device="cpu")
    assert model_num_classes(model) == 10
    x = torch.zeros(2, 1, 28, 28)
    assert model(x, torch.full((2,), 0.5), y=torch.tensor([0, 10])).shape == x.shape
    synth = ["train", "--preset", "smoke", "--run-dir", str(tmp_path / "s"), "--no-progress"]
    r.PRESETS["smoke"]["dataset"] = "synthetic"
    try:
        assert r.run_recipe("t", r.PRESETS, "fashion_mnist", [*synth, "--conditional"]) == 0
    finally:
        r.PRESETS["smoke"].pop("dataset")


def test_a_conditional_run_samples_a_block_per_class_with_guidance(tmp_path, capsys):
    """--conditional end to end: train, then 'sample' with --class / --guidance (and the
    default 'all'); an unconditional run refuses them in one error line."""
    data, run = tmp_path / "fm", tmp_path / "run"
    write_fashion(data, n=16)
    r = tiny(load("fashion_mnist_nivp"), "smoke")
    args = ["--preset", "smoke", "--data-dir", str(data), "--run-dir", str(run), "--no-progress"]
    small = ["--sample-n", "4", "--sample-steps", "3", "--sampler", "dpm_solver_2m"]
    assert r.run_recipe("t", r.PRESETS, "fashion_mnist", ["all", *args, *small, "--conditional"]) == 0
    guided = ["sample", *args, *small, "--class", "1,3", "--guidance", "2",
              "--guidance-interval", "0.1,0.9"]  # fmt: skip
    assert r.run_recipe("t", r.PRESETS, "fashion_mnist", guided) == 0
    out = capsys.readouterr().out
    assert "wrote" in out and len(list((run / "samples").glob("*.png"))) == 2
    plain = tmp_path / "plain"
    other = ["--preset", "smoke", "--data-dir", str(data), "--run-dir", str(plain), "--no-progress"]
    assert r.run_recipe("t", r.PRESETS, "fashion_mnist", ["train", *other]) == 0
    capsys.readouterr()
    bad = ["sample", *other, *small, "--guidance", "2"]
    assert r.run_recipe("t", r.PRESETS, "fashion_mnist", bad) == 2
    assert "need a conditional run" in capsys.readouterr().err


def test_evaluating_a_conditional_run_reports_the_accuracy_of_the_asked_classes(
    tmp_path, monkeypatch
):
    from sdekit.metrics.features import FashionClassifier

    monkeypatch.setenv("SDEKIT_CACHE", str(tmp_path / "cache"))
    (tmp_path / "cache").mkdir()
    torch.manual_seed(0)
    torch.save({"model": FashionClassifier().state_dict(), "test_accuracy": 0.5, "epochs": 0},
               tmp_path / "cache" / "fashion_classifier.pt")  # fmt: skip
    data, run = tmp_path / "fm", tmp_path / "run"
    write_fashion(data, n=16)
    r = tiny(load("fashion_mnist_nivp"), "smoke")
    args = ["--preset", "smoke", "--data-dir", str(data), "--run-dir", str(run), "--no-progress"]
    assert r.run_recipe("t", r.PRESETS, "fashion_mnist", ["train", *args, "--conditional"]) == 0
    cell = ["evaluate", *args, "--eval-steps", "3", "--eval-samplers", "ddim", "--eval-n", "10",
            "--guidance", "2"]  # fmt: skip
    assert r.run_recipe("t", r.PRESETS, "fashion_mnist", cell) == 0
    row = json.loads((run / "evaluation.json").read_text())["rows"][0]
    assert 0 <= row["accuracy"] <= 1 and row["spec"]["classes"] == "all"
    assert row["spec"]["guidance"] == 2.0 and "fid" in row
    # the accuracy is the classifier's agreement with the asked labels (one per class here)
    from sdekit.metrics.features import load_fashion_classifier
    from sdekit.training.images import from_uint8

    cells = list((run / "evaluation" / "samples").glob("*.pt"))
    images = from_uint8(torch.load(cells[0], weights_only=True)["images"])
    classifier, _ = load_fashion_classifier()
    agree = (classifier(images).argmax(1) == torch.arange(10)).double().mean()
    assert row["accuracy"] == round(float(agree), 4)


def test_conditional_study_writes_csv_plot_and_class_grid(tmp_path, monkeypatch):
    """recipes/conditional_study.py on a tiny conditional run: a row per scale (and interval)
    with FID, its sd and the accuracy; the plot and the per-class grid."""
    import csv

    from sdekit.metrics.features import FashionClassifier

    monkeypatch.setenv("SDEKIT_CACHE", str(tmp_path / "cache"))
    (tmp_path / "cache").mkdir()
    torch.manual_seed(0)
    torch.save({"model": FashionClassifier().state_dict(), "test_accuracy": 0.5, "epochs": 0},
               tmp_path / "cache" / "fashion_classifier.pt")  # fmt: skip
    data, run = tmp_path / "fm", tmp_path / "run"
    write_fashion(data, n=16)
    r = tiny(load("fashion_mnist_nivp"), "smoke")
    args = ["--preset", "smoke", "--data-dir", str(data), "--run-dir", str(run), "--no-progress"]
    assert r.run_recipe("t", r.PRESETS, "fashion_mnist", ["train", *args, "--conditional"]) == 0
    out = tmp_path / "conditional.csv"
    study = load("conditional_study")
    study.main([f"gff={run}", "--n", "10", "--samplers", "dpm_solver_2m", "--scales", "0,2",
                "--out", str(out), "--figures", str(tmp_path)])  # fmt: skip
    rows = list(csv.DictReader(out.open()))
    assert [(r["scale"], bool(r["interval"])) for r in rows] == [
        ("0.0", False), ("2.0", False), ("2.0", True)]  # fmt: skip
    assert all(r["fid"] and r["fid_sd"] and r["accuracy"] and r["noise"] == "gff" for r in rows)
    assert [r["network_passes"] for r in rows][:2] == ["20", "40"]  # CFG: both branches
    assert (tmp_path / "conditional_fid_accuracy.png").is_file()
    assert (tmp_path / "conditional_gff.png").is_file()
