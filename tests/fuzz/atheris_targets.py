"""Coverage-guided fuzzing with atheris (when it installs): ``python atheris_targets.py TARGET -runs=N``.

Targets: ``condition`` (the condition parser), ``route`` (the route loader), ``csv`` and ``jsonl``
(the lead-file readers, fed through a temporary file). An exception other than waystation's own
errors is a crash: atheris prints the input and exits non-zero. ``tests/core/test_fuzz_parsers.py``
runs each target for a few thousand inputs.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["waystation"]):
    from waystation.conditions import parse_condition
    from waystation.errors import ConditionSyntaxError, RouteError, WaystationError
    from waystation.route import Route

_TMP = Path(os.environ.get("WS_FUZZ_DIR", "."))  # where the reader targets write their input file


def condition(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    src = fdp.ConsumeUnicode(5000)
    with contextlib.suppress(ConditionSyntaxError):
        parse_condition(src).evaluate({"x": fdp.ConsumeUnicode(8), "phone": fdp.ConsumeInt(8)})


def route(data: bytes) -> None:
    text = atheris.FuzzedDataProvider(data).ConsumeUnicode(1 << 16)
    with contextlib.suppress(RouteError):
        Route.from_text(text, "fuzz.yaml")


def _reader(fmt: str):  # type: ignore[no-untyped-def]
    from waystation import batch

    def target(data: bytes) -> None:
        path = _TMP / f"in.{fmt}"
        path.write_bytes(data)
        try:
            reader = batch.open_reader(path, fmt, 4096)  # type: ignore[arg-type]
        except WaystationError:
            return
        try:
            for rec in reader:
                assert rec.error is not None or rec.lead is not None
            assert reader.bytes_read <= len(data)
        finally:
            reader.close()

    return target


TARGETS = {"condition": condition, "route": route, "csv": _reader("csv"), "jsonl": _reader("jsonl")}

if __name__ == "__main__":
    name = sys.argv[1]
    atheris.Setup([sys.argv[0], *sys.argv[2:]], TARGETS[name])
    atheris.Fuzz()
