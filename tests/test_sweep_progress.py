"""The sweep's end summary: its wall time, this run's and the sum over every recorded point."""

from __future__ import annotations

import pandas as pd

from yolozoo.sweep.progress import wall_time_line


def test_wall_time_line_sums_recorded_points():
    df = pd.DataFrame({"status": ["completed", "failed", "pending", "completed"],
                       "duration_s": [600.0, 30.0, None, 3000.0]})
    assert wall_time_line(df, 95.2) == ("wall time: this run 0:01:36; all 3 recorded points 1:00:30 "
                                        "(sum of their run times)")
    assert wall_time_line(df.iloc[2:3], None) == "wall time: not recorded"
