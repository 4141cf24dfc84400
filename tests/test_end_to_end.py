"""One real smoke training run, plus the run entry point's error paths."""

import json
from pathlib import Path

import pytest

from yolozoo.config import load_config


@pytest.fixture(scope="module")
def smoke_record(tmp_path_factory):
    from yolozoo.train import train

    tmp = tmp_path_factory.mktemp("smoke")
    cfg = load_config(["preset=smoke", "trainer.max_epochs=3", f"out_dir={tmp / 'runs'}",
                       f"results_dir={tmp / 'results'}", f"data.root={tmp / 'data'}", "wandb.mode=offline"])
    return train(cfg), tmp


@pytest.mark.slow
def test_smoke_run_learns_and_records(smoke_record):
    record, tmp = smoke_record
    losses = [row["train/loss"] for row in record["history"]]
    assert len(losses) == 3 and losses[-1] < losses[0]
    m = record["metrics"]
    assert m["mAP50"] > 0 and m["mAP"] > 0
    assert m["params"] > 0 and m["flops"] > 0 and m["latency_ms"] > 0 and m["throughput"] > 0
    assert m["epochs"] == 3 and 1 <= m["best_epoch"] <= 3
    assert set(record["per_class"]) == {str(d) for d in range(10)}
    # the record on disk is the config that ran, with the environment
    (path,) = (tmp / "results" / "runs").glob("*.json")
    on_disk = json.loads(path.read_text())
    assert on_disk["config"]["trainer"]["max_epochs"] == 3 and on_disk["config"]["preset"] == "smoke"
    assert on_disk["environment"]["packages"]["torch"] and on_disk["status"] == "completed"
    # W&B ran offline (in WANDB_DIR when one is set, else inside the run dir; tests/test_wandb_run.py checks which)
    assert record["wandb_dir"] and Path(record["wandb_dir"]).name.startswith("offline-run-")
    assert Path(record["wandb_dir"]).is_dir()


def test_run_rejects_unknown_key(capsys):
    import yolozoo.run as run

    assert run.main(["trainer.max_epoch=3"]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'trainer.max_epoch'" in err and "trainer.max_epochs" in err


def test_nan_loss_fails_clearly(tmp_path, nan_loss):
    from yolozoo.train import train

    cfg = load_config(["preset=smoke", "trainer.max_epochs=1", f"out_dir={tmp_path / 'runs'}",
                       f"results_dir={tmp_path / 'results'}", f"data.root={tmp_path / 'data'}"])
    with pytest.raises(FloatingPointError, match=r"loss is nan at epoch 0, step 0 \(cls=.*box=nan\)"):
        train(cfg)
