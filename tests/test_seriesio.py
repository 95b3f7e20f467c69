"""capplan.collect.files.read_series_csv: the timestamp,value input of `forecast` and `runway`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from capplan.errors import ParseError
from capplan.collect.files import read_series_csv


def write(tmp_path, text, name="s.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_reads_sorts_and_localises(tmp_path):
    p = write(tmp_path, "value,timestamp,host\n2,2024-01-01 01:00:00,a\n1,2024-01-01T00:00:00Z,a\n"
                        ",2024-01-01T02:00:00+01:00,a\n")
    s = read_series_csv(p)
    assert str(s.index.tz) == "UTC"
    # naive 01:00 is taken as UTC; 02:00+01:00 is the same instant (its empty value is missing)
    assert list(s.index) == [pd.Timestamp("2024-01-01 00:00", tz="UTC"),
                             pd.Timestamp("2024-01-01 01:00", tz="UTC")]
    assert s.tolist() == [1.0, 2.0]


def test_duplicates_averaged_and_missing_kept(tmp_path):
    p = write(tmp_path, "timestamp,value\n2024-01-01T00:00:00Z,1\n2024-01-01T00:00:00Z,3\n"
                        "2024-01-01T01:00:00Z,nan\n")
    s = read_series_csv(p)
    assert len(s) == 2 and s.iloc[0] == 2 and np.isnan(s.iloc[1])


def test_nab_file(shared_dir):
    s = read_series_csv(shared_dir / "data" / "nab" / "rds_cpu_utilization_cc0c53.csv")
    assert len(s) == 4032 and s.index.is_monotonic_increasing


@pytest.mark.parametrize("text,line,needle", [
    ("timestamp,value\n2024-01-01T00:00:00Z,1\n2024-01-01T01:00:00Z,x\n", 3, "not a number"),
    ("timestamp,value\nnot-a-date,1\n", 2, "not a date"),
    ("time,v\n2024-01-01T00:00:00Z,1\n", 1, "lacks"),
    ("timestamp,value\n2024-01-01T00:00:00Z\n", 2, "fields"),
    ("timestamp,value\n2024-01-01T00:00:00Z,inf\n", 2, "infinite"),
    ("timestamp,value\n", 2, "no data rows"),
    ("", 1, "empty file"),
])
def test_parse_errors_name_file_and_line(tmp_path, text, line, needle):
    p = write(tmp_path, text)
    with pytest.raises(ParseError) as ei:
        read_series_csv(p)
    assert ei.value.line == line and ei.value.path == str(p)
    assert needle in str(ei.value)


def test_missing_file(tmp_path):
    with pytest.raises(ParseError, match="cannot open"):
        read_series_csv(tmp_path / "nope.csv")
