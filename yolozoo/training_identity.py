"""When two configs train the same model: a resolved config without the keys that only name, place or show a run,
and without keys added later at the value that trains as before. Resume and sweep record reuse compare these."""

from __future__ import annotations

# Keys that name a run or say where it writes and how it is shown, never what it trains.
NOT_TRAINING = ("name", "resume", "out_dir", "results_dir", "wandb", "trainer.enable_progress_bar", "imports")


# Keys added after records were published, with the value that trains as before they existed: a config
# holding that value compares equal to a record without the key (resume, sweep record reuse).
LATER_KEYS = {"trainer.max_time": None, "data.cache": False, "data.jitter_on": "loader", "model.freeze": 0,
              "model.head_convs": 2, "model.neck": "pan", "trainer.compile": None}


def training_config(config: dict, keep: tuple[str, ...] = ()) -> dict:
    """A resolved config (plain dict) without the :data:`NOT_TRAINING` keys (but those in ``keep``): two runs
    whose training configs are equal train the same model from the same seed."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in config.items()}
    for key in NOT_TRAINING:
        if key in keep:
            continue
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node.get(part, {})
        node.pop(leaf, None)
    for key, before in LATER_KEYS.items():  # at the value that trains as before the key existed: as before it
        section, leaf = key.split(".")
        if leaf in out.get(section, {}) and out[section][leaf] == before:
            out[section].pop(leaf)
    return out

