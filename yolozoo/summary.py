"""The plain-text metrics summary a run (``bench/run.py``) and a checkpoint's validation (``bench/val.py``) print."""

from __future__ import annotations


def _fmt(value, fmt: str = "{:.3f}") -> str:
    return "-" if value is None or value != value else fmt.format(value)


def summary(record: dict) -> str:
    """Headline metrics, size and speed of a result record, then AP@0.5 and AP@0.5:0.95 per class.

    A metric the record lacks (a validation has no training time) shows as ``-``.
    """
    m = record["metrics"]

    def f(key, fmt="{:.3f}"):
        return _fmt(m.get(key), fmt)

    params, flops = m.get("params"), m.get("flops")
    rows = [
        ("mAP@0.5", f("mAP50")), ("mAP@0.5:0.95", f("mAP")),
        ("AP small / medium / large", f"{f('APs')} / {f('APm')} / {f('APl')}"),
        ("params (M)", _fmt(params / 1e6 if params is not None else None, "{:.2f}")),
        ("FLOPs (G) per image", _fmt(flops / 1e9 if flops is not None else None)),
        ("train time (s)", f("train_time_s", "{:.1f}")), ("train img/s", f("train_img_per_s", "{:.1f}")),
        ("latency (ms/img, batch 1)", f("latency_ms", "{:.2f}")), ("throughput (img/s)", f("throughput", "{:.1f}")),
        ("epochs (best)", f"{_fmt(m.get('epochs'), '{}')} ({_fmt(m.get('best_epoch'), '{}')})"),
    ]
    per_class = record.get("per_class") or {}
    width = max([len(k) for k, _ in rows] + [len(f"AP {name}") for name in per_class])
    lines = [f"== {record['name']} =="] + [f"{k:<{width}}  {v}" for k, v in rows]
    if per_class:
        lines.append(f"{'per class':<{width}}  AP@0.5 / AP@0.5:0.95")
        lines += [f"{'AP ' + str(name):<{width}}  {_fmt(v.get('AP50'))} / {_fmt(v.get('AP'))}"
                  for name, v in per_class.items()]
    return "\n".join(lines)
