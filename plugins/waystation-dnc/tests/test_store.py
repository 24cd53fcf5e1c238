"""The DNC store against real files and a real SQLite file."""

from __future__ import annotations

import gzip
import threading
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
import pytest
from waystation_dnc.store import DNCFileError, DNCStore, normalize_number

Write = Callable[[str, str], Path]


@pytest.mark.parametrize(("text", "expected"), [
    ("2125550100", 2125550100),
    ("(212) 555-0100", 2125550100),
    ("+1 212.555.0100", 2125550100),
    ("1-212-555-0100", 2125550100),
    ("212555010", None),         # 9 digits
    ("22125550100", None),       # 11 digits not starting with 1
    ("0125550100", None),        # area code starts with 0
    ("2121550100", None),        # exchange starts with 1
    ("", None),
])
def test_normalize_number(text: str, expected: int | None) -> None:
    assert normalize_number(text) == expected


def test_full_list_formats_and_rejects(write: Write, store_path: Path) -> None:
    f = write("212.txt", "PhoneNumber\n2125550100\n212,5550101\n\n# comment\n(212) 555-0102\nnot a number 12\n"
                         "0125550100\n")
    with DNCStore(store_path) as st:
        res = st.import_file(f, "federal")
        assert (res.added, res.rejected, res.area_codes) == (3, 2, [212])
        assert res.rejected_examples[0].startswith("212.txt:7: not a 10-digit US phone number")
        assert res.rejected_examples[1].startswith("212.txt:8:")
        assert st.lookup(2125550101) == ["federal"]
        assert st.lookup(2125550103) == []
        assert st.loaded_area_codes() == {212}


def test_zip_with_several_members_and_gzip(tmp_path: Path, store_path: Path) -> None:
    z = tmp_path / "dnc.zip"
    with zipfile.ZipFile(z, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("212.txt", "2125550100\n2125550101\n")
        zf.writestr("312.txt", "312,5550100\n")
        zf.writestr("folder/", "")
    g = tmp_path / "617.txt.gz"
    g.write_bytes(gzip.compress(b"6175550142\n"))
    with DNCStore(store_path) as st:
        assert st.import_file(z).added == 3
        assert st.import_file(g).added == 1
        assert st.loaded_area_codes() == {212, 312, 617}
        assert st.lookup(3125550100) == ["federal"]


def test_full_list_replaces_its_area_codes_only(write: Write, store_path: Path) -> None:
    with DNCStore(store_path) as st:
        st.import_file(write("a.txt", "2125550100\n2125550101\n3125550100\n"))
        res = st.import_file(write("b.txt", "2125550199\n"))
        assert res.replaced == 2 and res.added == 1
        assert st.lookup(2125550100) == []
        assert st.lookup(2125550199) == ["federal"]
        assert st.lookup(3125550100) == ["federal"]  # other area code untouched
        assert st.status()["federal"].numbers == 2


def test_change_list_adds_and_deletes_in_file_order(write: Write, store_path: Path) -> None:
    with DNCStore(store_path) as st:
        st.import_file(write("full.txt", "2125550100\n2125550101\n"))
        ch = write("changes.txt", "2125550102,A,20261127\n2125550100,D,20261127\n212,5550103,add\n"
                                  "2125550103,DELETE\n2125550104\n")
        res = st.import_file(ch, changes=True)
        assert (res.added, res.deleted, res.rejected) == (2, 2, 1)
        assert "no add/delete indicator" in res.rejected_examples[0]
        assert [n for n in range(2125550100, 2125550105) if st.lookup(n)] == [2125550101, 2125550102]
        # lines without an indicator take --action
        res = st.import_file(write("deletes.txt", "2125550101\n"), changes=True, action="delete")
        assert res.deleted == 1 and st.lookup(2125550101) == []


def test_same_file_is_not_imported_twice(write: Write, store_path: Path) -> None:
    f = write("ch.txt", "2125550100,A\n")
    with DNCStore(store_path) as st:
        assert not st.import_file(f, changes=True).skipped
        st.conn.execute("DELETE FROM numbers")
        assert st.import_file(f, changes=True).skipped
        assert st.lookup(2125550100) == []
        assert st.import_file(f, changes=True, force=True).added == 1


def test_lists_are_separate(write: Write, store_path: Path) -> None:
    with DNCStore(store_path) as st:
        st.import_file(write("f.txt", "2125550100\n"), "federal")
        st.import_file(write("i.txt", "2125550100\n4155550100\n"), "internal")
        st.import_file(write("l.txt", "4155550100\n"), "litigator")
        assert st.lookup(2125550100) == ["federal", "internal"]
        assert st.lookup(4155550100) == ["internal", "litigator"]
        assert st.lookup(4155550100, ["federal", "litigator"]) == ["litigator"]
        assert st.loaded_area_codes("federal") == {212}
        # internal lists add; --replace empties the list first
        st.import_file(write("i2.txt", "6175550100\n"), "internal", replace=True)
        assert st.lookup(2125550100) == ["federal"]
        assert st.lookup(6175550100) == ["internal"]


def test_failed_import_leaves_the_store_unchanged(tmp_path: Path, store_path: Path, write: Write) -> None:
    with DNCStore(store_path) as st:
        st.import_file(write("ok.txt", "2125550100\n"))
        broken = tmp_path / "broken.txt.gz"
        data = gzip.compress("".join(f"212{2000000 + i * 7:07d}\n" for i in range(100_000)).encode())
        broken.write_bytes(data[: len(data) // 2])  # a truncated archive

        with pytest.raises(DNCFileError, match=r"cannot read DNC file .*broken\.txt\.gz"):
            st.import_file(broken)
        assert st.lookup(2125550100) == ["federal"]  # the replace of 212 was rolled back
        assert st.lookup(2122000007) == []
        assert len(st.imports()) == 1
        with pytest.raises(DNCFileError, match="not found"):
            st.import_file(tmp_path / "missing.txt")


def test_status_ages_and_staleness(write: Write, store_path: Path) -> None:
    now = datetime(2026, 11, 28, tzinfo=UTC)
    with DNCStore(store_path) as st:
        st.import_file(write("212.txt", "2125550100\n"), as_of=now - timedelta(days=40))
        st.import_file(write("312.txt", "3125550100\n"), as_of=now - timedelta(days=2))
        fed = st.status(now)["federal"]
        assert fed.area_codes == [212, 312] and fed.numbers == 2
        assert fed.age_days == pytest.approx(40) and fed.stale
        # a change list refreshes the area code it touches
        st.import_file(write("ch.txt", "2125550101,A\n"), changes=True, as_of=now - timedelta(days=1))
        fed = st.status(now)["federal"]
        assert fed.age_days == pytest.approx(2) and not fed.stale
        assert st.status(now)["internal"].age_days is None


def test_large_import_streams_in_bounded_memory(tmp_path: Path, store_path: Path) -> None:
    n = 1_000_000
    big = tmp_path / "big.txt"
    with big.open("w") as fh:
        for i in range(n):
            fh.write(f"{200 + i % 50},{2000000 + i // 50:07d}\n")
    proc = psutil.Process()
    base = proc.memory_info().rss
    peak = base
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, proc.memory_info().rss)
            done.wait(0.005)

    t = threading.Thread(target=sample)
    t.start()
    try:
        with DNCStore(store_path) as st:
            res = st.import_file(big)
    finally:
        done.set()
        t.join()
    assert res.added == n and res.rejected == 0 and len(res.area_codes) == 50
    # holding the numbers in a list would take > 36 MB (ints + list slots); streaming stays far below
    assert peak - base < 24 * 1024 * 1024, f"import grew RSS by {(peak - base) / 2**20:.1f} MiB"


def test_two_processes_importing_the_same_file_import_it_once(write: Write, store_path: Path) -> None:
    f = write("212.txt", "".join(f"212{2000000 + i:07d}\n" for i in range(20_000)))
    DNCStore(store_path).close()
    results = []
    barrier = threading.Barrier(2)

    def worker() -> None:
        with DNCStore(store_path) as st:
            barrier.wait()
            results.append(st.import_file(f))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.skipped for r in results) == [False, True]
    with DNCStore(store_path) as st:
        assert st.status()["federal"].numbers == 20_000 and len(st.imports()) == 1
