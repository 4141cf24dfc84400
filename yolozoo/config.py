"""The typed config tree, presets, ``key=value`` overrides, and the order in which their layers apply.

Config is read in one place: ``load_config(argv)`` resolves dataclass defaults < preset < ``config=FILE`` <
``key=value`` overrides into a :class:`Config` (an OmegaConf structured config in struct mode), so an unknown
key or a value of the wrong type fails before any work starts, naming the key and listing the valid ones.
A sweep point's or search trial's overrides come from :func:`layered_overrides` (its study's ``base``, its axes
or sampled values, the command line). Registry names and the model family's own keys are checked by
:mod:`yolozoo.config_checks`; this module imports nothing from the models. Builders read the config; classes
take explicit arguments.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException, ValidationError

from .config_checks import ConfigError, check_config, resolve_assigner

PRESET_DIR = Path(__file__).parent / "presets"


@dataclass
class DataConfig:
    name: str = "digits"  # digits | coco | voc | yolo
    root: str | None = None  # dataset location (digits: cache dir, default data/ or $YOLOZOO_DATA)
    img_size: int = 128  # letterboxed square input size
    num_train: int = 12000  # digits: scenes to generate
    num_val: int = 500  # digits: validation scenes to generate
    gen_seed: int = 0  # digits: generation seed (independent of the training seed)
    distort: int = 0  # digits: shape variation of the training digits, percent strength (0 disables)
    train_split: str | None = None  # voc: "2007_trainval,2012_trainval"; coco: "train2017"
    val_split: str | None = None  # voc: "2007_test"; coco: "val2017"
    flip: float = 0.0  # horizontal flip probability (0 for digits: a flipped digit is another glyph)
    color_jitter: float = 0.3  # brightness/contrast/saturation jitter strength (0 disables)
    jitter_on: str = "loader"  # loader | device: jitter each image in the loader, or whole batches on the GPU
    scale: float = 0.0  # random zoom in 1 +- scale (boxes cut to under 60% visible are dropped)
    translate: float = 0.0  # random shift up to this fraction of the image size
    mosaic: float = 0.0  # probability of a 4-image mosaic
    num_workers: int | None = None  # loader processes; unset: 0 on <= 2 CPUs, else min(8, CPUs // 2)
    cache: bool = False  # decode every image into memory once, before the loaders start (RAM: N x H x W x 3 bytes)


@dataclass
class ModelConfig:
    # yolo (this harness's PAN + decoupled/anchor head) | yolov1 | yolov3 | yolov5 | yolox | yolov8
    # (yolozoo/models/families.py); a family reads only its own keys below, others must keep their defaults
    # (or the preset's values)
    family: str = "yolo"
    backbone: str = "lcnet_075"  # any timm model with features_only
    pretrained: str = "false"  # false | imagenet | path to a state dict
    width: float = 0.25  # neck/head channel multiplier (the study's channel_sparsity)
    # yolo: backbone strides of the 3 pyramid levels. The default [4, 8, 16] suits digits' small objects
    # at 128 px; YOLO's usual [8, 16, 32] (preset=voc, the sweeps) suits larger images
    strides: list[int] = field(default_factory=lambda: [4, 8, 16])
    # freeze the backbone's layers up to its feature map at this stride (weights and BatchNorm statistics; every
    # family); 0 freezes none. With ImageNet weights, 4 saves the backward pass of the high-resolution first layers
    freeze: int = 0
    depth: float = 1.0  # block-count multiplier (CSP bottlenecks, Darknet conv-set pairs, YOLOv1 convs); not yolo
    prior_scale: float = 4.0  # anchor-free prior box side, in strides
    head: str = "free"  # free (anchor-free, one prior per cell) | anchor (K anchor boxes per cell; grid assigners)
    head_convs: int = 2  # yolo: 3x3 convs per head branch (class and box), 0-4; YOLOX and YOLOv8 have 2
    # yolo: pan (concatenation then a 3x3 conv at each fusion, as YOLOv4-v8) | pan_sum (element-wise sums, as FPN
    # and PANet: about half the multiply-adds)
    neck: str = "pan"
    # anchor head: yolov5 (COCO anchors x img_size/640) | auto (IoU k-means on the training boxes) |
    # [[[w, h], ...K], ...3 levels] px at data.img_size
    anchors: Any = "yolov5"
    num_anchors: int = 3  # anchors per cell and level (anchor head)
    box_param: str = "v5"  # anchor head box decoding: v5 (YOLOv5) | v3 (YOLOv3)
    num_levels: int = 3  # yolov3: pyramid levels used, coarsest last (2: strides 16/32, the smol variant)
    reg_max: int = 16  # yolov8: DFL bins per box side (distances 0..reg_max-1 strides)
    grid_size: int = 7  # yolov1: S
    boxes_per_cell: int = 2  # yolov1: B


def default_value(key: str) -> Any:
    """The dataclass default of dotted ``key`` (``trainer.batch_size`` -> 16), before any preset."""
    value = OmegaConf.select(OmegaConf.structured(Config), key)
    return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value


def model_defaults() -> dict:
    """Every ``model.*`` key with its default (what a family checks its unused keys against)."""
    return {f.name: f.default_factory() if f.default is dataclasses.MISSING else f.default
            for f in dataclasses.fields(ModelConfig)}


@dataclass
class LossConfig:
    iou_type: str = "ciou"  # box regression loss: iou | giou | ciou
    cls: float = 1.0  # weights of the named terms (a family's loss returns some of them)
    box: float = 5.0  # yolov1: lambda_coord
    dfl: float = 1.0  # yolov8 (YOLOv8's box:dfl = 7.5:1.5)
    obj: float = 1.0  # yolov1
    noobj: float = 0.5  # yolov1: lambda_noobj


@dataclass
class OptimConfig:
    name: str = "adamw"  # adamw | sgd
    lr: float = 0.004  # peak learning rate of the one-cycle schedule
    weight_decay: float = 0.01  # on conv/linear weights (none on norms and biases)
    momentum: float = 0.9  # sgd: Nesterov momentum
    warmup: float = 0.1  # fraction of steps in the one-cycle warm-up
    ema_decay: float = 0.995  # EMA of weights used for validation and the final model (0 disables)


@dataclass
class TrainerConfig:
    max_epochs: int = 5  # training epochs (with max_time: the most it may train)
    # wall-clock budget of the whole run, e.g. 10m, 90s, 1.5h (preset default: 10m): fits the number of steps and
    # the learning-rate schedule to it after timing the first steps (yolozoo/time_budget.py); null: max_epochs
    max_time: str | None = None
    batch_size: int = 16  # images per step (per device), train and val
    precision: str = "32-true"  # 16-mixed / bf16-mixed for AMP on GPU
    accelerator: str = "auto"  # Lightning accelerator: auto | cpu | gpu
    devices: Any = "auto"  # Lightning devices: auto, a count, or a list of ids
    strategy: str = "auto"  # ddp on multi-GPU machines
    accumulate_grad_batches: int = 1  # steps whose gradients add up before each optimizer step
    gradient_clip_val: float = 10.0  # gradient norm clip (0 disables)
    deterministic: bool = False  # torch deterministic algorithms (slower; bitwise-repeatable runs)
    # NHWC conv layout (same numbers up to rounding): null times both at start-up on a CPU (yolozoo/layout.py),
    # takes channels_last on a GPU
    channels_last: bool | None = None
    # torch.compile of the model for training steps: null (eager) or a torch.compile mode: default |
    # reduce-overhead (CUDA graphs) | max-autotune | max-autotune-no-cudagraphs; validation stays eager
    compile: str | None = None
    limit_train_batches: float = 1.0  # fraction (<= 1.0) or number of train batches per epoch
    limit_val_batches: float = 1.0  # fraction (<= 1.0) or number of val batches
    check_val_every_n_epoch: int = 1  # validate after every N epochs
    log_every_n_steps: int = 10  # logger interval for step metrics
    enable_progress_bar: bool = True  # Lightning progress bar


@dataclass
class EvalConfig:
    score_thresh: float = 0.001  # detections scoring below are dropped before NMS (mAP wants it low)
    iou_thresh: float = 0.6  # NMS
    max_det: int = 100  # detections kept per image after NMS
    latency_batches: int = 50  # timing pass: calls timed (median) for latency (batch 1) and for throughput (batch 32)
    timing_threads: int = 2  # timing pass: torch threads, fixed so timings compare across runs


@dataclass
class WandbConfig:
    mode: str = "offline"  # offline | online | disabled
    project: str = "yolozoo"  # W&B project
    group: str | None = None  # W&B group (a sweep sets its name)
    log_model: bool = False  # upload the final checkpoint as a W&B model artifact


@dataclass
class Config:
    preset: str = "default"  # base settings from yolozoo/presets/NAME.yaml (default | smoke | voc | ...)
    name: str | None = None  # run name; default derived from the config
    # plug-in modules imported before the config is checked (they register assigners, families, backbones);
    # also $YOLOZOO_IMPORTS (comma-separated) and the entry points of group yolozoo.assigners
    imports: list[str] = field(default_factory=list)
    seed: int = 0  # training seed (weights init, data order, augmentation)
    out_dir: str = "runs"  # checkpoints, W&B files
    # continue an interrupted run: true (the newest unfinished run of this name and config under out_dir),
    # auto (that, else start afresh), a run folder or checkpoint path, or false; see yolozoo/resume.py
    resume: str = "false"
    results_dir: str = "results"  # result records
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    # name (auto: the model family's paper assigner and settings) + its keyword hyperparameters
    assigner: dict = field(default_factory=lambda: {"name": "auto"})
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    wandb: WandbConfig = field(default_factory=WandbConfig)


def list_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def parse_overrides(argv: list[str]) -> dict[str, str]:
    """``["a.b=1", ...]`` -> ``{"a.b": "1"}``; anything not ``key=value`` is an error."""
    out = {}
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep or not key:
            raise ConfigError(f"expected key=value, got {arg!r}")
        out[key.strip()] = value
    return out


def _valid_keys(node: DictConfig, prefix: str = "") -> list[str]:
    keys = []
    for k, v in node.items():
        if isinstance(v, DictConfig) and k != "assigner":
            keys += _valid_keys(v, f"{prefix}{k}.")
        else:
            keys.append(f"{prefix}{k}")
    return keys


def _merge(cfg: DictConfig, update: DictConfig, source: str) -> DictConfig:
    try:
        return OmegaConf.merge(cfg, update)
    except (ConfigAttributeError, ConfigKeyError) as e:
        key = e.full_key or e.key
        parent = key.rsplit(".", 1)[0] + "." if "." in key else ""
        valid = [k for k in _valid_keys(cfg) if k.startswith(parent)]
        from .registry import did_you_mean

        hint = did_you_mean(key, _valid_keys(cfg))
        raise ConfigError(f"{source}: unknown key {key!r}; valid keys: {', '.join(valid)}{hint}") from None
    except ValidationError as e:
        raise ConfigError(f"{source}: bad value for {e.full_key!r}: {str(e.msg).splitlines()[0]}") from None
    except OmegaConfBaseException as e:
        raise ConfigError(f"{source}: {e}") from None


def flatten(node: dict, prefix: str = "") -> dict[str, Any]:
    """``{model: {width: 1}, data.img_size: 96}`` -> ``{"model.width": 1, "data.img_size": 96}``."""
    out = {}
    for key, value in node.items():
        out.update(flatten(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return out


def read_overrides_file(path: str | Path) -> dict[str, Any]:
    """A YAML file of overrides (dotted keys, nested mappings, or both) -> ``{"a.b": value}``.

    This is the ``config=FILE`` of :func:`load_config`, e.g. a search's best-trial file.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config={path}: no such file")
    try:
        data = OmegaConf.to_container(OmegaConf.load(path)) or {}
    except Exception as e:  # yaml errors carry the line
        raise ConfigError(f"{path}: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file is a mapping of (dotted) keys to values, got {type(data).__name__}")
    flat = flatten(data)
    if "config" in flat:
        raise ConfigError(f"{path}: 'config' inside a config file is not supported; merge the two files")
    return flat


def literal(value: Any) -> Any:
    """``value`` with OmegaConf interpolations escaped (``${oc.env:HOME}`` stays that text), lists included.

    User-given values are data: a ``${...}`` in one is never resolved (it could read the
    environment, e.g. a password, into a stored config).
    """
    if isinstance(value, str):
        return value.replace("${", "\\${")
    if isinstance(value, list):
        return [literal(v) for v in value]
    if isinstance(value, dict):
        return {k: literal(v) for k, v in value.items()}
    return value


def _nested(flat: dict[str, Any]) -> DictConfig:
    """``{"a.b": 1}`` -> ``{a: {b: 1}}`` as an OmegaConf node (values keep their YAML types)."""
    root: dict = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = root
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return OmegaConf.create(root)


def load_config(argv: list[str] | dict[str, str] | None = None, base: dict | None = None,
                base_origin: str = "base config") -> DictConfig:
    """Resolve defaults <- preset <- ``config=FILE`` <- ``key=value`` overrides into a validated, read-only config.

    ``config=FILE``: a YAML file of overrides (see :func:`read_overrides_file`) applied after
    the preset and before the other overrides; a ``preset`` in it is used unless the command
    line names one. ``base``: a resolved config (e.g. the one stored in a checkpoint, named
    ``base_origin`` in errors) applied right after the preset, so every override goes on top.
    Also checks what only the registries know: the assigner name and its options, after
    importing the plug-in modules of ``imports`` (see :mod:`yolozoo.plugins`).
    """
    overrides = dict(argv) if isinstance(argv, dict) else parse_overrides(argv or [])
    config_file = overrides.pop("config", None)
    from_file = read_overrides_file(config_file) if config_file else {}
    base = dict(base or {})
    preset = str(overrides.pop("preset", from_file.pop("preset", base.pop("preset", "default"))))
    base.pop("preset", None)
    from_file.pop("preset", None)
    path = PRESET_DIR / f"{preset}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown preset {preset!r}; valid: {', '.join(list_presets())}")
    cfg = OmegaConf.structured(Config)
    OmegaConf.set_struct(cfg, True)
    OmegaConf.set_struct(cfg.assigner, False)  # keys depend on the assigner; checked below
    try:
        preset_cfg = OmegaConf.load(path) or OmegaConf.create()
    except Exception as e:  # yaml errors carry the line
        raise ConfigError(f"{path}: {e}") from None
    cfg = _merge(cfg, preset_cfg, str(path))
    cfg.preset = preset
    if base:
        cfg = _merge(cfg, OmegaConf.create(base), base_origin)
    if from_file:
        cfg = _merge(cfg, _nested({k: literal(v) for k, v in from_file.items()}), str(config_file))
    cfg = _merge(cfg, OmegaConf.from_dotlist([f"{k}={literal(v)}" for k, v in overrides.items()]), "command line")
    try:  # a literal "${...}" given for a number is only type-checked when read
        OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as e:
        raise ConfigError(f"command line: bad value for {e.full_key!r}: {str(e.msg).splitlines()[0]}") from None
    cfg.assigner = resolve_assigner(cfg)  # assigner.name=auto -> the family's: the stored config names what runs
    # a model key the family does not read may keep the preset's value (the default run's head_convs with yolov8)
    check_config(cfg, {**model_defaults(), **OmegaConf.to_container(preset_cfg.get("model") or OmegaConf.create())})
    OmegaConf.set_readonly(cfg, True)
    return cfg


# A point (and a search trial) does the work its config names. The default run's own settings (the keys of
# yolozoo/presets/default.yaml: its time budget, which would fit each point's epochs to the machine, and its
# batch) are set back to the dataclass defaults, unless the sweep's base, an axis, the command line or its
# config=FILE sets them. Nor is the layout timed at start-up: the published records ran channels_last, and a
# layout chosen by timing could change a point's numbers in the last bits from one worker to the next.
FIXED_WORK = {"trainer.channels_last": True}


def override_text(value: Any) -> str:
    """A YAML value as ``key=value`` text that parses back to the same value."""
    if isinstance(value, str):
        # quote strings YAML would read as something else ("false", "1e3"), so they stay strings
        return value if isinstance(yaml.safe_load(value or "''"), str) else json.dumps(value)
    return json.dumps(value)  # null, true/false, numbers, [lists] are all valid YAML


def format_overrides(overrides: dict[str, Any]) -> dict[str, str]:
    """Overrides as ``load_config`` takes them (text, like the command line)."""
    return {k: override_text(v) for k, v in overrides.items()}


def preset_keys(preset: str) -> set[str]:
    """Dotted keys the preset file sets (none for an unknown preset: load_config reports that)."""
    path = PRESET_DIR / f"{preset}.yaml"
    return set(read_overrides_file(path)) if path.is_file() else set()


@functools.cache
def default_run_reset() -> dict[str, Any]:
    """The default preset's keys at their dataclass defaults (read once: every point and trial resolves them)."""
    return {k: default_value(k) for k in preset_keys("default")}


def config_file_overrides(cli: dict[str, str]) -> dict[str, Any]:
    """The overrides in the command line's ``config=FILE``, if any (a bad file is reported by load_config)."""
    if not cli.get("config"):
        return {}
    try:
        return read_overrides_file(cli["config"])
    except ConfigError:
        return {}


def layered_overrides(base: dict[str, Any], varied: dict[str, Any], cli: dict[str, str]) -> dict[str, str]:
    """The ``key=value`` overrides of one sweep point or search trial, in rising order:

    the fixed work (:data:`FIXED_WORK`, and the default preset's keys at their dataclass defaults) < the study's
    ``base`` < ``varied`` (a point's axes, a trial's sampled values) < the command line. ``base`` holds the
    study's defaults for the CPU / digits setting, so a chosen preset (``preset=voc``; from the command line, its
    ``config=FILE``, else ``base`` or the axes) and a ``config=FILE`` outrank it and the fixed work: a key either
    sets is left out of both.
    """
    from_file = config_file_overrides(dict(cli))
    merged = {**base, **varied}
    preset = str(cli.get("preset") or from_file.get("preset") or merged.get("preset", "default"))
    covered = (set() if preset == "default" else preset_keys(preset)) | set(from_file)
    fixed = {k: v for k, v in {**default_run_reset(), **FIXED_WORK}.items() if k not in covered}
    kept = {k: v for k, v in base.items() if k not in covered}
    return {**format_overrides(fixed), **format_overrides(kept), **format_overrides(dict(varied)), **dict(cli)}


def to_dict(cfg: DictConfig) -> dict:
    return OmegaConf.to_container(cfg, resolve=True)
