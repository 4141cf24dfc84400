"""bench/visualize_assign.py: one valid PNG per level, drawing exactly the assigned priors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import bench.visualize_assign as vis
from yolozoo.config import load_config


@pytest.fixture
def tiny_image(tmp_path):
    """A 64x48 picture with two labelled boxes (YOLO txt next to it)."""
    g = torch.Generator().manual_seed(0)
    pixels = (torch.rand(48, 64, 3, generator=g) * 255).to(torch.uint8).numpy()
    path = tmp_path / "tiny.png"
    Image.fromarray(pixels).save(path)
    path.with_suffix(".txt").write_text("0 0.25 0.4 0.25 0.5\n2 0.7 0.6 0.4 0.6\n")
    return path


def check_pngs(result: vis.Visualization, name: str) -> None:
    assert [p.name for p in result.paths] == [f"{name}_level{i}.png" for i in range(3)]
    for path in result.paths:
        with Image.open(path) as im:
            im.verify()
        with Image.open(path) as im:
            pixels = np.asarray(im.convert("RGB"))
        assert pixels.shape[0] > 100 and pixels.shape[1] > 100 and pixels.std() > 0


def check_plotted_positives(result: vis.Visualization) -> None:
    fg, priors = result.assign.fg_mask[0], result.priors
    assert sum(len(c) for c in result.plotted_centres) == int(fg.sum()) > 0
    for lv, centres in enumerate(result.plotted_centres):
        expect = priors.centers[fg & (priors.level == lv)].numpy()
        assert sorted(map(tuple, centres.tolist())) == sorted(map(tuple, expect.tolist()))


def test_user_image_with_anchor_head(tiny_image, tmp_path, capsys):
    argv = [f"image={tiny_image}", f"out={tmp_path / 'png'}", "preset=smoke", "model.head=anchor",
            "assigner.name=nearby_grid", f"out_dir={tmp_path / 'runs'}"]
    assert vis.main(argv) == 0
    out = capsys.readouterr().out
    assert "GT boxes: 2" in out and "positives per GT: mean" in out and "positives per level: level 0" in out
    assert sorted(p.name for p in (tmp_path / "png").iterdir()) == [f"nearby_grid_level{i}.png" for i in range(3)]

    cfg = load_config(argv[2:])
    result = vis.run(cfg, tmp_path / "again", image=str(tiny_image))
    check_pngs(result, "nearby_grid")
    check_plotted_positives(result)
    assert result.gt_mask.sum() == 2 and result.stats["gt_without_pos"] == 0.0
    # letterboxed from 64x48 to 64x64 (scale 1, padding below): GT 0 is (8, 7.2, 24, 31.2) px
    fg = result.assign.fg_mask[0]
    assert set(result.assign.gt_index[0][fg].tolist()) == {0, 1}
    first = result.assign.boxes[0][fg & (result.assign.gt_index[0] == 0)]
    assert torch.allclose(first, torch.tensor([8.0, 7.2, 24.0, 31.2]).expand_as(first), atol=1e-4)


def test_dataset_sample_with_free_head(tmp_path, capsys):
    argv = ["preset=smoke", "assigner.name=atss", "index=3", f"data.root={tmp_path / 'data'}",
            f"out={tmp_path / 'png'}", f"out_dir={tmp_path / 'runs'}"]
    assert vis.main(argv) == 0
    assert "wrote" in capsys.readouterr().out
    cfg = load_config([a for a in argv if not a.startswith(("index=", "out="))])
    result = vis.run(cfg, tmp_path / "again", index=3)
    check_pngs(result, "atss")
    check_plotted_positives(result)


@pytest.mark.parametrize(
    "args, message",
    [
        (["trainer.max_epoch=3"], "unknown key 'trainer.max_epoch'"),
        (["assigner.name=yolov5"], "set model.head=anchor"),
        (["index=x"], "index must be an integer"),
        (["split=test"], "split must be train or val"),
        (["index=999"], "index=999 out of range"),
    ],
)
def test_bad_arguments_exit_2(args, message, tmp_path, capsys):
    base = ["preset=smoke", f"data.root={tmp_path / 'data'}", f"out={tmp_path / 'png'}"]
    assert vis.main([*base, *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "png").exists()


def test_image_without_labels_is_a_clear_error(tmp_path, tiny_image, capsys):
    tiny_image.with_suffix(".txt").unlink()
    assert vis.main(["preset=smoke", f"image={tiny_image}", f"out={tmp_path / 'png'}"]) == 2
    assert "no labels for" in capsys.readouterr().err
