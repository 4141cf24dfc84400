import pytest
import torch
from omegaconf import OmegaConf
from torch.utils.flop_counter import FlopCounterMode

from yolozoo.config import ModelConfig
from yolozoo.models import build_model, count_flops, count_params, make_priors

BACKBONES = ["resnet18", "lcnet_100", "mobilenetv3_small_100", "efficientnet_lite0"]


def model_cfg(**kw):
    """A model config at YOLO's usual strides 8/16/32 (the shapes below assume them) unless given."""
    return OmegaConf.structured(ModelConfig(**{"strides": [8, 16, 32], **kw}))


@pytest.mark.parametrize("backbone", BACKBONES)
def test_forward_backward_64px(backbone):
    model = build_model(model_cfg(backbone=backbone, width=0.25), num_classes=7)
    images = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    out = model(images)
    A = (8 * 8 + 4 * 4 + 2 * 2)
    assert out.cls_logits.shape == (2, A, 7) and out.boxes.shape == (2, A, 4) and len(out.priors) == A
    assert torch.isfinite(out.boxes).all()
    assert (out.boxes[..., 2:] >= out.boxes[..., :2]).all()  # ltrb >= 0 decode to valid boxes
    (out.cls_logits.mean() + out.boxes.mean()).backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)


def test_width_scales_neck_and_head():
    small = build_model(model_cfg(width=0.25), 10)
    large = build_model(model_cfg(width=1.0), 10)
    assert small.neck.out_channels == [32, 64, 128] and large.neck.out_channels == [128, 256, 512]
    assert count_params(large) > count_params(small)
    assert count_flops(large, 64) > count_flops(small, 64) > 0


@pytest.mark.parametrize("head", ["free", "anchor"])
def test_head_convs_sets_the_3x3_convs_per_branch(head):
    from yolozoo.models.anchors import resolve_anchors
    from yolozoo.models.layers import ConvBNAct

    anchors = resolve_anchors("yolov5", 3, 64) if head == "anchor" else None
    models = {n: build_model(model_cfg(width=0.25, head=head, head_convs=n), 10, anchors) for n in (0, 1, 2, 3)}
    for n, model in models.items():
        for branch in (*model.head.cls_branch, *model.head.box_branch):
            assert [type(m) for m in branch] == [ConvBNAct] * n + [torch.nn.Conv2d]
    assert count_params(models[0]) < count_params(models[1]) < count_params(models[2]) < count_params(models[3])
    for n in (0, 1):  # 0: the 1x1 outputs on the neck's maps (32, 64 and 128 channels at width 0.25)
        out = models[n](torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8))
        assert out.cls_logits.shape[:2] == out.boxes.shape[:2] == (2, len(out.priors))
    # the 2-conv head keeps its parameter names, so checkpoints from before the key load as they are
    assert "head.cls_branch.0.2.weight" in models[2].state_dict()


def test_head_convs_out_of_range_or_unused_fails_before_training():
    from yolozoo.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="model.head_convs must be in 0..4"):
        load_config(["preset=smoke", "model.head_convs=5"])
    with pytest.raises(ConfigError, match="model.head_convs=1 is not used by model.family=yolov8"):
        load_config(["preset=smoke", "model.head_convs=1", "model.family=yolov8"])
    # the default run's preset sets head_convs=1: another family on it still loads, unless the key is set again
    assert load_config(["model.family=yolov8"]).model.family == "yolov8"
    with pytest.raises(ConfigError, match="model.head_convs=3 is not used by model.family=yolov8"):
        load_config(["model.family=yolov8", "model.head_convs=3"])


def test_pan_sum_neck_gives_maps_of_the_same_shapes_for_about_half_the_multiply_adds():
    pan, pan_sum = (build_model(model_cfg(width=0.25, neck=n), 10) for n in ("pan", "pan_sum"))
    images = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    feats = pan.backbone(images.float())
    assert [f.shape for f in pan.neck(feats)] == [f.shape for f in pan_sum.neck(feats)]
    assert pan.neck.out_channels == pan_sum.neck.out_channels == [32, 64, 128]
    macs = {}
    for name, model in (("pan", pan), ("pan_sum", pan_sum)):
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model.neck(feats)
        macs[name] = counter.get_total_flops()
    assert 0.4 < macs["pan_sum"] / macs["pan"] < 0.6
    out = pan_sum(images)
    (out.cls_logits.mean() + out.boxes.mean()).backward()
    assert all(p.grad is not None for p in pan_sum.neck.parameters())
    # the concatenating neck keeps its parameter names, so checkpoints from before the key load as they are
    assert {"neck.td3.0.weight", "neck.bu5.0.weight"} <= set(pan.state_dict())


def test_unknown_neck_fails_before_training_naming_the_key():
    from yolozoo.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=r"model.neck: unknown neck 'pan-sum'.*did you mean 'pan_sum'"):
        load_config(["preset=smoke", "model.neck=pan-sum"])


def test_neck_sized_from_feature_info():
    model = build_model(model_cfg(backbone="mobilenetv3_small_100", width=0.5), 3)
    assert model.backbone.channels == [model.backbone.body.feature_info.channels()[i] for i in model.backbone.indices]
    assert model.backbone.strides == [8, 16, 32]


def test_strides_pick_the_pyramid_levels():
    model = build_model(model_cfg(strides=[4, 8, 16], width=0.25), 10)
    assert model.strides == [4, 8, 16]
    out = model(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))
    assert len(out.priors) == 16 * 16 + 8 * 8 + 4 * 4
    assert sorted(set(out.priors.strides.tolist())) == [4, 8, 16]
    with pytest.raises(ValueError, match=r"no feature map at stride \[64\].*set model.strides"):
        build_model(model_cfg(strides=[16, 32, 64]), 10)


@pytest.mark.parametrize("strides, family", [([8, 4, 16], "yolo"), ([8, 16], "yolo"), ([8, 16, 32], "yolov5")])
def test_bad_strides_fail_before_training(strides, family):
    from yolozoo.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="model.strides"):
        load_config([f"model.strides=[{','.join(map(str, strides))}]", f"model.family={family}"])


def test_priors_layout():
    pri = make_priors([(2, 3), (1, 2)], [8, 16], prior_scale=4.0)
    assert pri.centers.tolist()[:4] == [[4, 4], [12, 4], [20, 4], [4, 12]]
    assert pri.centers.tolist()[6:] == [[8, 8], [24, 8]]
    assert pri.strides.tolist() == [8] * 6 + [16] * 2 and pri.level.tolist() == [0] * 6 + [1] * 2
    assert pri.sizes[0].tolist() == [32, 32] and pri.boxes()[0].tolist() == [-12, -12, 20, 20]


def test_missing_pretrained_file_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="no weights file"):
        build_model(model_cfg(pretrained=str(tmp_path / "nope.pth")), 3)


def test_pretrained_path_loads_strictly(tmp_path):
    model = build_model(model_cfg(), 3)
    path = tmp_path / "bb.pth"
    torch.save(model.backbone.body.state_dict(), path)
    other = build_model(model_cfg(pretrained=str(path)), 3)
    for (k, a), b in zip(model.backbone.body.state_dict().items(), other.backbone.body.state_dict().values()):
        assert torch.equal(a, b), k


def test_channels_last_module_same_outputs():
    from yolozoo.lit import DetectorModule

    torch.manual_seed(0)
    model = build_model(model_cfg(width=0.25), 5).eval()
    images = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    with torch.no_grad():
        ref = model(images)
    module = DetectorModule(model, None, None, {}, {}, {}, 64, channels_last=True)
    convs = [m.weight for m in module.model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    nhwc = module.images({"images": images})
    assert nhwc.is_contiguous(memory_format=torch.channels_last) and not nhwc.is_contiguous()
    with torch.no_grad():
        out = module.model(nhwc)
    torch.testing.assert_close(out.cls_logits, ref.cls_logits, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(out.boxes, ref.boxes, atol=1e-3, rtol=1e-4)


def test_modules_up_to_follow_the_feature_path():
    from yolozoo.models.backbone import modules_up_to
    from yolozoo.models.pretrained import create_backbone_body

    assert modules_up_to(create_backbone_body("mobilenetv2_100", False), "blocks.1") == [
        "conv_stem", "bn1", "blocks.0", "blocks.1"]
    assert modules_up_to(create_backbone_body("resnet18", False), "layer1") == [
        "conv1", "bn1", "act1", "maxpool", "layer1"]


def test_freeze_fixes_the_first_layers_and_trains_the_rest():
    from yolozoo.models.backbone import TimmBackbone

    torch.manual_seed(0)
    backbone = TimmBackbone("mobilenetv2_100", strides=(4, 8, 16), freeze=4)
    frozen = {n for n, p in backbone.body.named_parameters() if not p.requires_grad}
    assert frozen and all(n.startswith(("conv_stem.", "bn1.", "blocks.0.", "blocks.1.")) for n in frozen)
    assert all(n in frozen for n, _ in backbone.body.named_parameters() if n.startswith(("conv_stem.", "blocks.1.")))
    before = {k: v.clone() for k, v in backbone.body.state_dict().items()}
    opt = torch.optim.SGD([p for p in backbone.parameters() if p.requires_grad], lr=0.1)
    backbone.train()
    sum(f.square().mean() for f in backbone(torch.randn(2, 3, 64, 64))).backward()
    opt.step()
    after = backbone.body.state_dict()
    # weights and BatchNorm statistics of the frozen layers stay as loaded; the next layers train
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith(("conv_stem.", "bn1.", "blocks.1.")))
    assert not torch.equal(before["blocks.2.0.conv_pw.weight"], after["blocks.2.0.conv_pw.weight"])
    assert not torch.equal(before["blocks.2.0.bn1.running_mean"], after["blocks.2.0.bn1.running_mean"])


def test_freeze_needs_a_backbone_stride_and_pretrained_weights():
    from yolozoo.config import ConfigError, load_config
    from yolozoo.models.backbone import TimmBackbone

    with pytest.raises(ValueError, match="model.freeze=3: backbone 'mobilenetv2_100' has no feature map"):
        TimmBackbone("mobilenetv2_100", freeze=3)
    with pytest.raises(ConfigError, match="model.freeze=4 freezes randomly initialised layers"):
        load_config(["preset=smoke", "model.freeze=4"])  # smoke: the dataclass default, lcnet_075 from scratch
    with pytest.raises(ConfigError, match="model.freeze=4 freezes randomly initialised layers"):
        load_config(["preset=smoke", "model.freeze=4", "model.family=yolov5"])  # every family reads it
    with pytest.raises(ConfigError, match="model.freeze must be >= 0"):
        load_config(["model.freeze=-4"])


@pytest.mark.parametrize("name, strides, freeze", [("mobilenetv2_100", (4, 8, 16), 4), ("resnet18", (8, 16, 32), 4),
                                                   ("darknet_small", (4, 8, 16), 0)])
def test_streamlined_body_computes_the_same_maps_and_gradients(name, strides, freeze):
    """Unused later blocks dropped, frozen BatchNorms folded into their convs: the training forward and the
    trainable layers' gradients are those of the body as timm builds it, up to float rounding."""
    import timm.utils

    from yolozoo.models.backbone import TimmBackbone, modules_up_to
    from yolozoo.models.pretrained import create_backbone_body

    torch.manual_seed(0)
    backbone = TimmBackbone(name, strides=strides, freeze=freeze)
    torch.manual_seed(0)
    plain = create_backbone_body(name, False)  # the same random weights as the backbone's
    if freeze:
        path = plain.feature_info.module_name()[max(i for i, r in enumerate(plain.feature_info.reduction())
                                                    if r == freeze)]
        timm.utils.freeze(plain, modules_up_to(plain, path))
    names = {n for n, m in backbone.body.named_modules() if isinstance(m, torch.nn.Identity)}
    assert any(n.startswith(("blocks.5", "stages_4")) for n in names) or freeze  # later blocks gone where unused
    if freeze:  # no frozen norm is left
        assert not any("Frozen" in type(m).__name__ for m in backbone.body.modules())
    # timm's body in float64 is the reference: its float32 gradients differ from their float64 values by ~2e-3 with
    # one thread (oneDNN's kernels sum in another order), the streamlined body's by ~6e-6
    x = torch.randn(2, 3, 64, 64)
    plain.double().train(), backbone.train()
    want = [plain(x.double())[i] for i in backbone.indices]
    got = backbone(x)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b.float(), rtol=1e-4, atol=1e-4)
    sum(f.square().mean() for f in got).backward()
    sum(f.square().mean() for f in want).backward()
    trained = dict(plain.named_parameters())
    for n, p in backbone.body.named_parameters():
        if p.requires_grad:
            torch.testing.assert_close(p.grad, trained[n].grad.float(), rtol=1e-3, atol=1e-5)


def test_streamlining_that_changes_the_maps_is_not_used(monkeypatch):
    """Should folding ever pair a conv with the wrong norm (an unusual timm model), the maps would differ: the
    backbone warns and keeps the body as built."""
    from yolozoo.models import backbone as bb

    def wrong_fold(body):
        with torch.no_grad():
            body.conv_stem.weight.mul_(2)

    monkeypatch.setattr(bb, "fold_frozen_batchnorms", wrong_fold)
    with pytest.warns(UserWarning, match="maps differ; using it as built"):
        backbone = bb.TimmBackbone("mobilenetv2_100", strides=(4, 8, 16))
    assert not isinstance(backbone.body.blocks[6], torch.nn.Identity)


@pytest.mark.parametrize("name", ["adamw", "sgd"])
def test_optimizer_is_fused_and_updates_like_the_reference(name):
    """make_optimizer: trainable parameters only, no weight decay on norms and biases, PyTorch's fused kernel; the
    update is the for-loop implementation's up to float rounding."""
    from yolozoo.lit import make_optimizer

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, bias=False), torch.nn.BatchNorm2d(8), torch.nn.Conv2d(8, 4, 1))
    model[2].weight.requires_grad_(False)
    optim = {"name": name, "lr": 0.01, "weight_decay": 0.05, "momentum": 0.9}
    opt = make_optimizer(model, optim)
    assert all(g["fused"] for g in opt.param_groups)
    assert [len(g["params"]) for g in opt.param_groups] == [1, 3] and opt.param_groups[1]["weight_decay"] == 0
    ref_model = __import__("copy").deepcopy(model)
    groups = [{"params": [ref_model[0].weight], "weight_decay": 0.05},
              {"params": [ref_model[1].weight, ref_model[1].bias, ref_model[2].bias],
               "weight_decay": 0.0}]
    ref = (torch.optim.AdamW(groups, lr=0.01, foreach=False) if name == "adamw" else
           torch.optim.SGD(groups, lr=0.01, momentum=0.9, nesterov=True, foreach=False))
    x = torch.randn(2, 3, 8, 8)
    for _ in range(3):
        for m, o in ((model, opt), (ref_model, ref)):
            m(x).square().mean().backward()
            o.step()
            o.zero_grad()
    for a, b in zip(model.parameters(), ref_model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="optim.name must be adamw or sgd"):
        make_optimizer(model, {**optim, "name": "lion"})
