"""bench/run_all.py: finding benchmarks, running them (in this process and in child processes), the one table."""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _load_run_all():
    spec = importlib.util.spec_from_file_location("run_all", REPO / "bench" / "run_all.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["run_all"] = module
    spec.loader.exec_module(module)
    return module


run_all = _load_run_all()
Row = run_all.Row
BenchResult = run_all.BenchResult


def test_discovers_every_benchmark_file_of_the_project():
    found = run_all.discover()
    expected = {p.stem.removeprefix("bench_") for p in (REPO / "bench").glob("bench_*.py")}
    assert set(found) == expected
    assert {"load", "viewer", "editing", "3d", "phantom"} <= expected
    assert list(found) == sorted(found)


def test_only_selects_named_benchmarks_in_the_given_order():
    available = {"3d": Path("a"), "editing": Path("b"), "viewer": Path("c")}
    assert list(run_all.select(available, "viewer, bench_editing")) == ["viewer", "editing"]
    assert run_all.select(available, None) == available
    with pytest.raises(SystemExit, match="no benchmark 'nope'.*3d, editing, viewer"):
        run_all.select(available, "viewer,nope")


def test_quick_passes_fewer_repeats_or_quick_only_where_collect_accepts_them():
    seen = {}

    def with_repeats(repeats=5):
        seen["repeats"] = repeats
        return [Row("a", 1.0, "s")]

    def with_quick(quick=False):
        seen["quick"] = quick
        return [Row("b", 2.0, "s")]

    def without_arguments():
        seen["plain"] = True
        return [Row("c", 3.0, "s")]

    for collect in (with_repeats, with_quick, without_arguments):
        assert run_all.run_collect("x", collect, quick=True).error == ""
    assert seen == {"repeats": run_all.QUICK_REPEATS, "quick": True, "plain": True}
    run_all.run_collect("x", with_repeats, quick=False)
    assert seen["repeats"] == 5


def test_a_failing_collect_becomes_a_failed_row_not_a_crash():
    def broken():
        raise RuntimeError("no display")

    result = run_all.run_collect("viewer", broken)
    assert result.rows == [] and result.error == "RuntimeError: no display"
    table = run_all.build_table([result])
    assert "| viewer | FAILED: RuntimeError: no display |" in table.replace("  ", " ").replace("  ", " ")
    assert table.splitlines()[-1].endswith("failed: viewer")


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        (Row("t", 1.5, "s", goal="< 2 s"), True),
        (Row("t", 2.5, "s", goal="< 2 s"), False),
        (Row("t", 0.15, "s", goal="< 200 ms"), True),  # converted to the goal's unit
        (Row("t", 250.0, "ms", goal="< 0.2 s"), False),
        (Row("t", 1.2, "s", 1.0, "sitk", "<= 1.3x"), True),  # ratio 1.2
        (Row("t", 1.4, "s", 1.0, "sitk", "<= 1.3x"), False),
        (Row("t", 1.4, "s", goal="<= 1.3x"), None),  # no reference, no ratio
        (Row("m", 3500.0, "MiB", goal="< 3 GB"), False),
        (Row("m", 2.0, "GB", goal="< 3 GB"), True),
        (Row("u", 5.0, "ms", goal="< 10"), True),  # no unit: the value itself
        (Row("f", 9.0, "s", goal="a few seconds"), None),
        (Row("c", 0.3, "% of a core", goal="~0 (no polling timers)"), None),
        (Row("w", 2.0, "s", goal="< 3 MB"), None),  # incompatible units are not guessed
        (Row("n", 5.0, "s"), None),
    ],
)
def test_goal_checks(row, expected):
    assert run_all.goal_met(row) is expected


def test_one_table_with_reference_ratio_goal_and_verdict():
    results = [
        BenchResult("load", [Row("NIfTI open", 0.26, "s", 0.2, "sitk.ReadImage", "<= 1.3x"),
                             Row("peak memory", 300.0, "MiB", 150.0, "array size", "<= 2x")], 12.0),
        BenchResult("viewer", [Row("slice change", 4.0, "ms", goal="< 10 ms"), Row("idle CPU", 0.2, "%")], 30.0),
        BenchResult("3d", [], 1.0),
    ]
    table = run_all.build_table(results)
    lines = table.splitlines()
    assert lines[0].split("|")[1:-1] == [c.ljust(len(c)) for c in lines[0].split("|")[1:-1]]
    assert [c.strip() for c in lines[0].strip("|").split("|")] == [
        "bench", "figure", "medviewer", "reference (same run)", "ratio", "goal", "met"]
    cells = {line.split("|")[2].strip(): [c.strip() for c in line.strip("|").split("|")] for line in lines[2:] if line.startswith("|")}
    assert cells["NIfTI open"] == ["load", "NIfTI open", "0.26 s", "0.2 s (sitk.ReadImage)", "1.30x", "<= 1.3x", "yes"]
    assert cells["peak memory"][4:] == ["2.00x", "<= 2x", "yes"]
    assert cells["slice change"] == ["viewer", "slice change", "4 ms", "-", "-", "< 10 ms", "yes"]
    assert cells["idle CPU"][3:] == ["-", "-", "-", "-"]
    assert "(no figures: this benchmark skipped itself)" in cells
    assert len({len(line) for line in lines if line.startswith("|")}) == 1  # aligned columns
    assert lines[-1] == "4 figures from 3 benchmarks; goals met: 3, missed: 0"

    missed = run_all.build_table([BenchResult("load", [Row("NIfTI open", 0.4, "s", 0.2, "sitk", "<= 1.3x")])])
    assert "**NO**" in missed and missed.splitlines()[-1].endswith("goals met: 0, missed: 1")


def test_benchmarks_run_in_their_own_processes(tmp_path, capsys):
    """End to end through child processes: rows come back, a crash or an exception is one failed row."""
    (tmp_path / "bench_fast.py").write_text(textwrap.dedent('''
        import os
        from common import Row

        def collect(repeats=4):
            return [Row("pid", float(os.getpid()), "", goal="> 0"), Row("repeats", float(repeats), "")]
    '''))
    (tmp_path / "bench_broken.py").write_text("def collect():\n    raise ValueError('bad input')\n")
    (tmp_path / "bench_crash.py").write_text("import os\n\ndef collect():\n    os._exit(3)\n")
    code = run_all.main(["--bench-dir", str(tmp_path), "--only", "fast,broken,crash", "--quick"])
    out = capsys.readouterr().out
    assert code == 1  # something failed
    rows = {line.split("|")[2].strip(): [c.strip() for c in line.strip("|").split("|")] for line in out.splitlines() if line.startswith("| ")}
    import os

    assert float(rows["pid"][2]) != os.getpid()  # measured in another process
    assert rows["pid"][6] == "yes"
    assert rows["repeats"][2] == f"{run_all.QUICK_REPEATS}"
    assert rows["FAILED: ValueError: bad input"][0] == "broken"
    assert rows["FAILED: the benchmark process exited with code 3"][0] == "crash"
    assert "quick run" in out


def test_without_a_display_children_run_under_xvfb(tmp_path):
    command = run_all.worker_command("viewer", False, tmp_path / "o.json", display="")
    if run_all.shutil.which("xvfb-run"):
        assert command[:2] == ["xvfb-run", "-a"]
    assert command[command.index("--worker") + 1] == "viewer"
    assert run_all.worker_command("viewer", True, tmp_path / "o.json", display=":99")[0] == sys.executable
