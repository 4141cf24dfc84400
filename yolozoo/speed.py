"""Inference latency and throughput of a detector (forward + post-processing)."""

from __future__ import annotations

import time

import torch

from .postprocess import postprocess


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.inference_mode()
def measure_speed(model: torch.nn.Module, img_size: int, iters: int = 10, batch_size: int = 32,
                  warmup: int = 2) -> dict:
    """``latency_ms`` per image at batch 1 (median of ``iters``) and ``throughput`` img/s at ``batch_size``.

    Times the model's forward plus NMS on random uint8 images, after ``warmup`` calls.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device

    def run(batch: torch.Tensor) -> None:
        out = model(batch)
        postprocess(out.cls_logits, out.boxes)

    one = torch.randint(0, 256, (1, 3, img_size, img_size), dtype=torch.uint8, device=device)
    many = torch.randint(0, 256, (batch_size, 3, img_size, img_size), dtype=torch.uint8, device=device)
    for _ in range(warmup):
        run(one)
    times = []
    for _ in range(iters):
        _sync(device)
        t0 = time.perf_counter()
        run(one)
        _sync(device)
        times.append(time.perf_counter() - t0)
    run(many)
    _sync(device)
    t0 = time.perf_counter()
    n = max(iters // 4, 1)
    for _ in range(n):
        run(many)
    _sync(device)
    throughput = n * batch_size / (time.perf_counter() - t0)
    model.train(was_training)
    return {"latency_ms": 1000 * sorted(times)[len(times) // 2], "throughput": throughput}
