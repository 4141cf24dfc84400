"""Pick the convolution memory layout (NCHW or channels_last) by timing both on this machine.

Which one trains faster depends on the machine: channels_last (NHWC) sped the default model's step up
about 1.2x on an AVX-512 EPYC, and made no consistent difference on an AVX2 one. Both give the same
numbers up to float rounding, so the choice changes speed only.
"""

from __future__ import annotations

import copy
import statistics
import time

import torch
from torch import nn

MARGIN = 0.05  # NCHW must be this much faster to be chosen over channels_last


def step_seconds(model: nn.Module, images: torch.Tensor, channels_last: bool, steps: int = 3) -> float:
    """Median seconds of a forward + backward pass of ``model`` on ``images`` in one layout (1 warm-up)."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    x = images.contiguous(memory_format=fmt)
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        out = model(x)
        sum(t.float().mean() for t in (out.cls_logits, out.boxes)).backward()
        model.zero_grad(set_to_none=True)
        if i:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def faster_layout(model: nn.Module, img_size: int, batch_size: int, steps: int = 3) -> tuple[bool, dict]:
    """Whether channels_last trains ``model`` faster here, and the seconds per step of each layout.

    Times a copy of the model (its weights, batch-norm statistics and the global RNG are left as they
    were) on random uint8 images ``[batch_size, 3, img_size, img_size]``.
    """
    probe = copy.deepcopy(model).train()
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (batch_size, 3, img_size, img_size), generator=gen, dtype=torch.uint8)
    seconds = {layout: step_seconds(probe, images, layout == "channels_last", steps)
               for layout in ("nchw", "channels_last")}
    return seconds["channels_last"] < seconds["nchw"], seconds


def resolve_channels_last(setting: bool | None, model: nn.Module, img_size: int, batch_size: int,
                          on_gpu: bool) -> tuple[bool, dict]:
    """``trainer.channels_last``: as set, or (None) timed here: the layout and how it was chosen.

    On a GPU channels_last is taken without timing (the CPU could not tell; it trained the VOC-shaped
    preset 1.1x faster under AMP on an H200, reports/perf.md). On a CPU, NCHW only where it measures
    more than ``MARGIN`` faster: near-equal timings keep the layout the published records used.
    """
    if setting is not None:
        return bool(setting), {"channels_last": bool(setting), "how": "set"}
    if on_gpu:
        return True, {"channels_last": True, "how": "auto: GPU"}
    _, seconds = faster_layout(model, img_size, batch_size)
    use_nhwc = seconds["nchw"] * (1 + MARGIN) >= seconds["channels_last"]
    return use_nhwc, {"channels_last": use_nhwc, "how": "auto: timed",
                      **{f"{k}_ms": round(1000 * v, 1) for k, v in seconds.items()}}

