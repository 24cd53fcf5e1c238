"""Fuzzing the CSV and JSONL lead readers with hypothesis.

Whatever the bytes, constructing a reader raises nothing but ``BatchError`` (a bad header) and
iterating it raises nothing at all: each record has a lead or a reason. The work is bounded, and
asserted on counts, never on time: every byte of the file is read exactly once, no line longer
than the limit is ever kept in memory, and there is at most one record per physical line.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from waystation.batch import BatchError, open_reader

FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LIMIT = 64  # a small max_field_size, so that the fuzzer reaches the over-long paths

_CSV = [b"id,first_name,phone\n", b"a", b"b", b",", b'"', b'""', b"\n", b"\r\n", b"\r", b"\x00", b"\xff",
        b"\xef\xbb\xbf", b"x" * 70, b"=cmd", b"\t", b";", b"\xc3\xa9", b"id,id\n", b" , \n"]
_JSON = [b'{"id": "1"}', b'{"a": ', b"[" * 40, b"]" * 40, b"9" * 60, b"NaN", b"1e999", b'"\\u0000"', b'"x"', b"}",
         b"\n", b"\xff", b",", b'{"a": {"b": 1}}', b"null", b"true", b"-0", b'"' + b"y" * 80 + b'"', b"\xef\xbb\xbf"]

csv_bytes = st.one_of(st.binary(max_size=400), st.lists(st.sampled_from(_CSV), max_size=80).map(b"".join))
jsonl_bytes = st.one_of(st.binary(max_size=400), st.lists(st.sampled_from(_JSON), max_size=80).map(b"".join))


def read_all(data: bytes, fmt: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"in.{fmt}"
        path.write_bytes(data)
        try:
            reader = open_reader(path, fmt, LIMIT)  # type: ignore[arg-type]
        except BatchError as exc:
            assert fmt == "csv" and "\n" not in str(exc)
            return
        try:
            records = list(reader)
        finally:
            reader.close()
        lines = data.count(b"\n") + 1
        assert len(records) <= lines
        for rec in records:
            assert rec.lead is not None or rec.error
            assert rec.raw is None or len(rec.raw) <= 2000
        assert reader.bytes_read <= len(data)
        assert reader.longest_kept <= reader.line_limit + 1


@FUZZ
@given(csv_bytes)
def test_csv_reader_never_raises_and_stays_bounded(data: bytes) -> None:
    read_all(data, "csv")


@FUZZ
@given(jsonl_bytes)
def test_jsonl_reader_never_raises_and_stays_bounded(data: bytes) -> None:
    read_all(data, "jsonl")
