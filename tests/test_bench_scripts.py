"""The scripts in bench/ run end to end at tiny settings and their built-in checks hold.

No time is asserted: each script's timings are printed for people to read. What is asserted is
that the script runs, prints a row per case, and that the checks it prints (the fused chain draws
the spec chain's actions; the frozen critics' gradient equals autograd's; compiled critics equal
eager ones) are within rounding.
Slow (each script builds agents and times them in a fresh process); CI runs them.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from algd.nets import gemm

BENCH = Path(__file__).resolve().parents[1] / "bench"
pytestmark = pytest.mark.slow


def run_script(name: str, *args: str) -> str:
    proc = subprocess.run([sys.executable, str(BENCH / name), *args], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def table_rows(out: str, label: str) -> list[list[str]]:
    """The whitespace-split fields of every output line that starts with ``label``."""
    return [line.split() for line in out.splitlines() if line.startswith(label)]


def test_chain_latency_fused_chain_draws_the_spec_chains_actions():
    out = run_script("chain_latency.py", "--steps", "3", "--batches", "1,4", "--repeats", "1")
    rows = table_rows(out, "algd-")
    assert [r[:2] for r in rows] == [["algd-vesde", "batch=1"], ["algd-vesde", "batch=4"],
                                     ["algd-ddpm", "batch=1"], ["algd-ddpm", "batch=4"]], out
    for r in rows:
        assert r[4].endswith("x") and float(r[4][:-1]) > 0, out
        assert float(r[5]) < 1e-5, out  # max |Δa| between the two chains


def test_frozen_critics_gradient_check_and_rows():
    out = run_script("frozen_critics.py", "--algos", "algd-vesde,sac-lag", "--sizes", "builtin",
                     "--repeats", "1")
    rows = table_rows(out, "algd-vesde@builtin") + table_rows(out, "sac-lag@builtin")
    assert len(rows) == 2, out
    for r in rows:
        assert float(r[3].rstrip("x")) > 0, out
        assert float(r[4]) < 1e-4, out  # largest relative difference of the action gradient


def test_compiled_fusion_compiled_critics_match_eager_both_ways():
    out = run_script("compiled_fusion.py", "--algos", "sac-lag", "--sizes", "builtin",
                     "--repeats", "1")
    rows = table_rows(out, "sac-lag@builtin ")
    assert len(rows) == 1 and float(rows[0][3].rstrip("x")) > 0, out
    # compiled against eager: values and action gradients, baddbmm and fusable forms
    assert float(rows[0][4]) < 1e-4 and float(rows[0][5]) < 1e-4, out


def test_compiled_step_times_every_variant():
    out = run_script("compiled_step.py", "--algos", "sac-lag", "--sizes", "builtin",
                     "--repeats", "1")
    (row,) = table_rows(out, "sac-lag@builtin ")
    cells = re.findall(r"([\d.]+) \(([\d.]+)x\)", " ".join(row))
    assert len(cells) == 5 and cells[0][1] == "1.00", out  # eager, then four compiled ways
    assert all(float(ms) > 0 for ms, _ in cells), out
    assert re.search(r"sac-lag@builtin: one graph [\d.]+x the split step, C\+\+ wrapper "
                     r"[\d.]+x the Python wrapper", out), out


@pytest.mark.skipif(not gemm.onednn_available(), reason="this torch build has no oneDNN")
def test_gemm_backends_prints_both_backends():
    out = run_script("gemm_backends.py", "--algos", "algd-vesde", "--sizes", "builtin",
                     "--repeats", "1")
    rows = table_rows(out, "algd-vesde@builtin")
    assert len(rows) == 1 and rows[0][3].endswith("x"), out
    assert re.search(r"GFLOP/s torch [\d.]+, oneDNN [\d.]+", out), out


def test_split_first_layer_gradient_check_and_rows():
    out = run_script("split_first_layer.py", "--algos", "algd-vesde", "--sizes", "builtin",
                     "--obs-dims", "5,9", "--repeats", "1")
    rows = [r for r in table_rows(out, "algd-vesde@builtin obs=") if not r[1].endswith(":")]
    assert [r[1] for r in rows] == ["obs=5", "obs=9"], out  # not the "build and warm up" lines
    for r in rows:
        assert float(r[4].rstrip("x")) > 0, out
        assert float(r[5]) < 1e-4, out  # largest relative difference of the action gradient


def test_update_cost_has_a_row_per_algorithm():
    from algd.algos import list_algos

    out = run_script("update_cost.py", "--seconds", "0.05", "--repeats", "1", "--batch-size", "32")
    names = {r[0] for r in (line.split() for line in out.splitlines()[1:]) if r}
    assert names == {spec.name for spec in list_algos()}, out
    assert "1.00x algd-vesde" in out, out


def test_threads_times_every_case_at_both_counts_in_one_run():
    out = run_script("threads.py", "--algos", "sac-lag", "--sizes", "builtin", "--repeats", "1",
                     "--compile")
    rows = {r[0]: r for r in table_rows(out, "sac-lag@builtin/") + table_rows(out, "peak[")
            if not r[0].endswith(":")}  # not the "build and warm up" lines
    assert {"sac-lag@builtin/none", "sac-lag@builtin/default", "peak[torch]"} <= set(rows), out
    for r in rows.values():  # 1-thread ms, 2-thread ms, their ratio, efficiency at each count
        one, two = float(r[1]), float(r[2])
        assert float(r[3].rstrip("x")) == pytest.approx(one / two, rel=0.02), out
        assert all(0 < float(e.rstrip("%")) <= 100 for e in r[4:6]), out
    assert "build and warm up at 2 thread(s)" in out  # a compiled agent per thread count


@pytest.mark.parametrize("script, args, message", [
    ("threads.py", ["--threads", "1"], "give 2 or more, not 1"),
    ("frozen_critics.py", ["--algos", "nope"], "unknown algorithm 'nope'"),
    ("gemm_backends.py", ["--sizes", "huge"], "unknown size preset(s) ['huge']"),
    ("frozen_critics.py", ["--repeats", "0"], "--repeats must be >= 1"),
    ("compiled_fusion.py", ["--threads", "0"], "--threads must be >= 1"),
    ("compiled_step.py", ["--algos", "sac-lag,nope"], "unknown algorithm 'nope'"),
    ("split_first_layer.py", ["--obs-dims", "17,x"], "--obs-dims takes sizes like 17,60"),
])
def test_bad_options_fail_at_once_with_one_line(script, args, message):
    """A typo ends the script before anything is built, with a usage error and status 2."""
    proc = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr.splitlines()[-1] and "Traceback" not in proc.stderr
