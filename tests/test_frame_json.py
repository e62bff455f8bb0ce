"""Disk cache frames (lib.reports.frame_to_json): UTC moments written as the text ``isoformat``
gives each one (the same file as boxing them one by one), read back as the same frame."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from lib import reports


def _one_by_one(frame: pd.DataFrame) -> str:
    values = [frame.iloc[:, at].tolist() for at in range(frame.shape[1])]
    return json.dumps({"columns": list(frame.columns), "values": values}, default=reports.json_default)


def test_moments_written_as_isoformat_and_read_back() -> None:
    ms = [0, 1_500, 86_400_000, 1_700_000_000_123, -1_500, 1_733_011_200_000]
    frame = pd.DataFrame({
        "time": pd.to_datetime(ms, unit="ms", utc=True),
        "usd": np.linspace(-1.5, 3.25, len(ms)),
        "missing": pd.to_datetime([0, None, 0, 0, 0, 0], unit="ms", utc=True),  # NaT: boxed as before
        "nanos": pd.to_datetime(np.arange(len(ms)) + 1, unit="ns", utc=True),  # below a microsecond
        "naive": pd.to_datetime(ms, unit="ms"),
        "asset": ["BTC", "ETH", "X", "Y", "Z", "W"],
    })
    text = json.dumps(reports.frame_to_json(frame), default=reports.json_default)
    assert text == _one_by_one(frame)
    back = reports.frame_from_json(json.loads(text), ("time", "missing", "nanos"))
    for column in ("time", "missing", "nanos", "usd", "asset"):
        pd.testing.assert_series_equal(back[column], frame[column], check_exact=True, check_dtype=False)
        assert (back[column].astype("int64") if column in ("time", "nanos") else back[column]).equals(
            frame[column].astype("int64") if column in ("time", "nanos") else frame[column])
    empty = frame.iloc[:0]
    assert json.dumps(reports.frame_to_json(empty), default=reports.json_default) == _one_by_one(empty)


def test_moments_past_2262_keep_their_year() -> None:
    """Nanoseconds end in 2262: a later moment is written from its own unit, never wrapped."""
    moments = np.array(["9999-12-31T23:59:59", "2300-01-01T00:00:00.250"], "datetime64[us]")
    late = pd.Series(moments).dt.tz_localize("UTC")
    frame = pd.DataFrame({"time": late})
    written = reports.frame_to_json(frame)["values"][0]
    assert written == ["9999-12-31T23:59:59+00:00", "2300-01-01T00:00:00.250000+00:00"]
    assert json.dumps(reports.frame_to_json(frame), default=reports.json_default) == _one_by_one(frame)
