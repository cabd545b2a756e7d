"""Round trips on tiny real runs: train → eval → plot → report → landscape, numbers checked
against the runs' own metrics files."""

import csv
import dataclasses
import json
import math

import numpy as np
import pytest

from algd.algos import get_algo
from algd.analysis.runs import align, find_run_dirs, group_runs, load_runs
from algd.analysis.stats import iqm
from algd.cli import main
from algd.config import ConfigError, TrainConfig
from algd.train import Trainer
from algd.train.seeding import SeedStreams

TINY = dict(steps=200, warmup_steps=100, eval_every=50, eval_episodes=2, batch_size=32, utd=0.5,
            progress=False, plot=False, eval_deterministic=True)  # reproducible from a checkpoint
TINY_ALGO = dict(policy_hidden=16, critic_hidden=(16, 16))


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """Four tiny runs: three seeds of one setting (one evaluated on another grid), a ρ variant."""
    root = tmp_path_factory.mktemp("sweep")
    specs = [("vesde/s0", 0, {}, {}), ("vesde/s1", 1, {}, {}),
             ("vesde/s2", 2, {"eval_every": 75}, {}), ("rho4/s0", 0, {}, {"rho": 4.0})]
    for name, seed, train_kw, algo_kw in specs:
        cfg = TrainConfig(seed=seed, out=str(root / name), **{**TINY, **train_kw})
        Trainer(cfg, get_algo(cfg.algo).make_config({**TINY_ALGO, **algo_kw})).run()
    return root


def metrics(run_dir):
    with open(run_dir / "metrics.csv") as f:
        return list(csv.DictReader(f))


def col(run_dir, name):
    return np.array([float(r[name]) for r in metrics(run_dir)])


def test_eval_on_the_training_starts_reproduces_the_last_evaluation(sweep, capsys):
    from algd.analysis.evaluation import evaluate_run

    run = sweep / "vesde/s1"
    last = metrics(run)[-1]
    rep = evaluate_run(run, episodes=2, seed=SeedStreams.from_seed(1).eval_env)
    assert rep["return_mean"] == pytest.approx(float(last["eval_return"]), rel=1e-5, abs=1e-5)
    assert rep["cost_mean"] == pytest.approx(float(last["eval_cost"]), rel=1e-5, abs=1e-5)
    assert rep["lambda"] == pytest.approx(float(last["lambda"]), rel=1e-5)
    # the CLI: held-out starts by default, both samplers, eval.json in the run directory
    assert main(["eval", str(run), "--episodes", "3", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "deterministic" in out and "stochastic" in out and "eval.json" in out
    saved = json.loads((run / "eval.json").read_text())
    assert saved["episodes"] == 3 and saved["seed"] != SeedStreams.from_seed(1).eval_env
    for mode in ("deterministic", "stochastic"):
        s = saved[mode]
        assert len(s["returns"]) == 3
        assert s["return_mean"] == pytest.approx(np.mean(s["returns"]))
        assert s["cost_std"] == pytest.approx(np.std(s["costs"]))
        assert s["episodes_over_limit"] == pytest.approx(np.mean(np.array(s["costs"]) > 2.0))
    assert saved["return_mean"] == saved["deterministic"]["return_mean"]
    assert {"return_mean", "cost_mean", "episodes", "cost_limit"} <= set(saved)


def test_runs_are_found_and_grouped_by_setting(sweep):
    assert len(find_run_dirs([sweep])) == 4
    assert len(find_run_dirs([str(sweep / "vesde" / "s*")])) == 3  # a glob
    groups = {g.label: g for g in group_runs(load_runs([sweep]))}
    assert set(groups) == {"algd-vesde (rho=10)", "algd-vesde (rho=4)"}
    assert groups["algd-vesde (rho=10)"].seeds == [0, 1, 2]
    with pytest.raises(ConfigError, match="no such file"):
        find_run_dirs([str(sweep / "nowhere")])
    with pytest.raises(ConfigError, match="no run directories"):
        find_run_dirs([sweep / "vesde" / "s0" / "metrics.csv"])


def test_bookkeeping_fields_do_not_split_a_setting(sweep, tmp_path):
    """Runs that differ only in how they were run or what files they kept (compilation,
    checkpoint interval, best.pt, a field an older algd did not write) are one setting."""
    import shutil

    for name, change in [("a", {"keep_best": False, "checkpoint_every": 50, "compile": "default",
                                "cuda_graph": False, "torch_threads": 2}),
                         ("b", {"keep_best": None})]:
        run = tmp_path / name
        shutil.copytree(sweep / "vesde/s1", run)
        config = json.loads((run / "config.json").read_text())
        for key, value in change.items():
            if value is None:
                del config["train"][key]  # written before the field existed
            else:
                config["train"][key] = value
        (run / "config.json").write_text(json.dumps(config))
    groups = group_runs(load_runs([sweep / "vesde" / "s0", tmp_path]))
    assert [g.label for g in groups] == ["algd-vesde"] and len(groups[0].runs) == 3


def test_curves_on_different_grids_are_interpolated_onto_the_union(sweep):
    g = {g.label: g for g in group_runs(load_runs([sweep / "vesde"]))}["algd-vesde"]
    cur = align(g.runs, "eval_return")
    assert cur.interpolated and not cur.truncated
    np.testing.assert_array_equal(cur.steps, [0, 50, 75, 100, 150, 200])
    s0, s2 = col(sweep / "vesde/s0", "eval_return"), col(sweep / "vesde/s2", "eval_return")
    np.testing.assert_allclose(cur.values[0][[0, 1, 3, 4, 5]], s0)  # its own points, unchanged
    np.testing.assert_allclose(cur.values[2][[0, 2, 4, 5]], s2)  # steps 0, 75, 150, 200
    np.testing.assert_allclose(cur.values[2][1], s2[0] + (s2[1] - s2[0]) * 50 / 75)
    same = align(g.runs[:2], "eval_return")  # identical grids: taken as they are
    assert not same.interpolated and same.steps.tolist() == [0, 50, 100, 150, 200]


def test_report_matches_the_metrics_files(sweep, tmp_path, capsys):
    out = tmp_path / "report.md"
    assert main(["report", str(sweep), "--out", str(out), "--reps", "2000"]) == 0
    text = capsys.readouterr().out
    assert "| algd-vesde (rho=10) | 3 | 200 |" in text and "IQM" not in text.split("|")[0]
    assert out.read_text() in text
    with open(tmp_path / "report.csv") as f:
        rows = {r["algorithm"]: r for r in csv.DictReader(f)}
    r = rows["algd-vesde (rho=10)"]
    dirs = [sweep / f"vesde/s{i}" for i in range(3)]
    finals = np.array([col(d, "eval_return")[-1] for d in dirs])
    costs = np.array([col(d, "eval_cost")[-1] for d in dirs])
    train_costs = np.array([col(d, "cum_train_cost")[-1] for d in dirs])
    assert float(r["return_iqm"]) == pytest.approx(iqm(finals), rel=1e-5)
    assert float(r["cost_iqm"]) == pytest.approx(iqm(costs), rel=1e-5, abs=1e-9)
    assert float(r["train_cost_iqm"]) == pytest.approx(iqm(train_costs), rel=1e-5, abs=1e-9)
    assert float(r["return_low"]) <= float(r["return_iqm"]) <= float(r["return_high"])
    assert finals.min() - 1e-9 <= float(r["return_low"])
    assert float(r["return_high"]) <= finals.max() + 1e-9
    assert int(r["within_limit"]) == int(np.sum(costs <= 2.0)) and int(r["seeds"]) == 3
    assert float(r["train_cost_budget"]) == pytest.approx(2.0 * 200 / 50)
    episodes = np.mean([col(d, "train_episodes").sum() for d in dirs])
    assert float(r["train_episodes"]) == pytest.approx(episodes) and episodes == 4  # 200 / 50
    assert f"of {episodes:.0f} |" in text
    one = rows["algd-vesde (rho=4)"]  # a single seed: a value, no interval
    assert one["seeds"] == "1" and one["return_low"] == "nan"
    assert "(1 seed)" in text
    # an output path that cannot be written: one line, exit 2
    blocked = tmp_path / "a_file"
    blocked.write_text("x")
    for command, name in (("report", "r.md"), ("plot", "c.png")):
        assert main([command, str(sweep), "--out", str(blocked / name)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "a file is in the way" in err[0], err


def test_report_final_can_average_the_last_evaluations(sweep):
    from algd.analysis.report import build_report

    rows = build_report(group_runs(load_runs([sweep / "vesde"])), last=2, reps=500)
    finals = [col(sweep / f"vesde/s{i}", "eval_return")[-2:].mean() for i in range(3)]
    assert rows[0].return_iqm == pytest.approx(iqm(np.array(finals)), rel=1e-5)


def test_report_warns_where_last_exceeds_the_evaluations_or_runs_end_apart(sweep, capsys):
    from algd.analysis.report import report_warnings

    groups = group_runs(load_runs([sweep / "vesde"]))
    evals = [len(col(sweep / f"vesde/s{i}", "eval_return")) for i in range(3)]
    assert report_warnings(groups, last=min(evals)) == []
    (note,) = report_warnings(groups, last=max(evals) + 1)
    assert f"--last {max(evals) + 1}: 3 of 3 runs" in note and f"fewest: {min(evals)}" in note
    # one run cut short: its task's runs end apart
    cut = groups[0].runs[0]
    cut.metrics = {k: v[:-1] for k, v in cut.metrics.items()}
    (note,) = report_warnings(groups)
    assert "PointDetour: the runs end at different steps" in note
    assert main(["report", str(sweep / "vesde"), "--last", "100"]) == 0
    assert "algd: warning: --last 100" in capsys.readouterr().err


def test_plot_writes_png_and_svg(sweep, tmp_path, capsys):
    out = tmp_path / "fig" / "curves.png"
    assert main(["plot", str(sweep), "--out", str(out), "--smooth", "2"]) == 0
    assert out.stat().st_size > 20_000 and out.with_suffix(".svg").stat().st_size > 20_000
    assert "algd-vesde (rho=10)" in capsys.readouterr().out
    assert main(["plot", str(sweep / "vesde" / "s0")]) == 0  # default: next to the run
    assert (sweep / "vesde" / "s0" / "comparison.png").exists()


def test_moving_average_is_trailing_and_keeps_the_first_points():
    from algd.analysis.compare import moving_average

    y = np.array([[1.0, 2.0, 3.0, 4.0]])
    np.testing.assert_allclose(moving_average(y, 2), [[1.0, 1.5, 2.5, 3.5]])
    np.testing.assert_allclose(moving_average(y, 1), y)


@pytest.mark.parametrize("argv,message", [
    (["plot", "/nonexistent/run"], "no such file"),
    (["report", "--last", "0", "."], "--last and --reps must be >= 1"),
    (["eval", "/nonexistent/run"], "not a run directory"),
    (["landscape"], "give a run directory or --demo"),
    (["landscape", "--demo", "--positions", "1;2"], "--positions expects"),
    (["report"], "the following arguments are required"),
])
def test_analysis_commands_fail_with_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err


def test_landscape_of_a_trained_run(sweep, tmp_path, capsys):
    run = sweep / "vesde" / "s0"
    out = tmp_path / "land.png"
    assert main(["landscape", str(run), "--out", str(out), "--grid", "21", "--samples", "16"]) == 0
    assert out.stat().st_size > 20_000 and out.with_suffix(".svg").exists()
    readout = json.loads(out.with_suffix(".json").read_text())
    assert readout["lambda"] == pytest.approx(col(run, "lambda")[-1], rel=1e-5)  # the run's λ
    assert [s["name"] for s in readout["states"]] == ["start", "beside the hazard",
                                                      "above the hazard"]
    for s in readout["states"]:
        for kind in ("lagrangian", "augmented"):
            r = s[kind]
            assert r["samples"] == 16 and math.isfinite(r["lam_min_at_policy_action"])
            assert r["sampler"] == "trained policy"
    assert "min-eig boundary" in capsys.readouterr().out


def test_landscape_states_from_rollouts_are_closest_to_the_boundary(sweep):
    from algd.analysis.landscape import landscape_run

    res = landscape_run(str(sweep / "vesde" / "s0"), states="rollout", lam=2.0, samples=8, grid=11)
    assert res.lam == 2.0 and [s.name for s in res.states][0] == "start"
    assert all(s.name.startswith("near boundary (g = ") for s in res.states[1:])


def test_landscape_of_a_sac_run_says_what_its_actor_was_trained_on(sweep, tmp_path):
    from algd.analysis.landscape import landscape_run

    base = TrainConfig(seed=0, out=str(tmp_path / "x"), **TINY)
    title = landscape_run(str(sweep / "vesde" / "s0"), samples=4, grid=5).title
    assert "trained on the augmented Lagrangian" in title and "ρ = 10," in title  # its own ρ
    for algo, trained_on in (("sac-lag", "a SAC actor trained on Q − λ·Q̄c)"),
                             ("cal", "with CAL's rectified λ")):
        cfg = dataclasses.replace(base, algo=algo, out=str(tmp_path / algo))
        Trainer(cfg, get_algo(algo).make_config({"actor_hidden": (16, 16),
                                                 "critic_hidden": (16, 16)})).run()
        title = landscape_run(cfg.out, samples=4, grid=5).title
        assert trained_on in title and "Lagrangian" not in title
        assert f"ρ = 1 (default: {algo} has no ρ)" in title
        assert "ρ = 3," in landscape_run(cfg.out, rho=3.0, samples=4, grid=5).title


def test_landscape_demo_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "demo.png"
    assert main(["landscape", "--demo", "--out", str(out), "--grid", "21", "--samples", "16",
                 "--positions=-1,0;0,0.7"]) == 0
    readout = json.loads(out.with_suffix(".json").read_text())
    assert [s["position"] for s in readout["states"]] == [[-1.0, 0.0], [0.0, 0.7]]
    assert out.stat().st_size > 20_000


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA device")
def test_a_run_trained_on_the_gpu_evaluates_and_explains_on_the_cpu(tmp_path):
    from algd.analysis.evaluation import evaluate_run
    from algd.analysis.landscape import landscape_run

    cfg = TrainConfig(seed=0, out=str(tmp_path / "gpu"), device="cuda", **TINY)
    Trainer(cfg, get_algo(cfg.algo).make_config(TINY_ALGO)).run()
    rep = evaluate_run(tmp_path / "gpu", episodes=2, device="cpu",
                       seed=SeedStreams.from_seed(0).eval_env)
    assert rep["device"] == "cpu"
    last = metrics(tmp_path / "gpu")[-1]  # same weights, same starts: same numbers (to float32)
    assert rep["return_mean"] == pytest.approx(float(last["eval_return"]), rel=1e-3, abs=1e-3)
    res = landscape_run(str(tmp_path / "gpu"), samples=8, grid=11)
    assert len(res.states) == 3


def test_cumulative_cost_is_never_smoothed_and_few_seeds_show_their_range(sweep):
    """--smooth averages evaluation curves only (a moving average of a running sum lowers it:
    the audit saw a final 486 drawn as 360), and with fewer than CI_MIN_SEEDS seeds the band is
    the seeds' range, not a bootstrap interval that pretends to more."""
    from algd.analysis.compare import CI_MIN_SEEDS, group_band, moving_average

    g = [g for g in group_runs(load_runs([sweep / "vesde"]))][0]
    cur = align(g.runs, "cum_train_cost")
    values, centre, low, high = group_band(cur, "cum_train_cost", smooth=3)
    np.testing.assert_array_equal(values, cur.values)
    ev = align(g.runs, "eval_return")
    values, centre, low, high = group_band(ev, "eval_return", smooth=3)
    np.testing.assert_allclose(values, moving_average(ev.values, 3))
    assert len(g.runs) < CI_MIN_SEEDS
    np.testing.assert_allclose(centre, values.mean(0))
    np.testing.assert_array_equal(low, values.min(0))
    np.testing.assert_array_equal(high, values.max(0))
    # five seeds: a bootstrap interval inside the range
    from algd.analysis.runs import AlignedCurves

    five = np.random.default_rng(0).normal(size=(5, 4))
    cur5 = AlignedCurves(ev.steps[:4], five, interpolated=False, truncated=False)
    _, centre, low, high = group_band(cur5, "eval_return")
    assert np.all(five.min(0) <= low) and np.all(low <= centre) and np.all(centre <= high)
    assert np.all(high <= five.max(0)) and np.any(high - low < five.max(0) - five.min(0))


def test_an_algorithm_keeps_its_colour_whatever_else_is_plotted(sweep):
    from algd.analysis.compare import ALGO_COLOURS, group_styles

    groups = group_runs(load_runs([sweep]))
    styles = group_styles(groups)
    assert styles["algd-vesde (rho=10)"][0] == styles["algd-vesde (rho=4)"][0] == \
        ALGO_COLOURS["algd-vesde"]
    assert styles["algd-vesde (rho=10)"][1] != styles["algd-vesde (rho=4)"][1]  # line style
    alone = group_styles([g for g in groups if g.label == "algd-vesde (rho=4)"])
    assert alone["algd-vesde (rho=4)"][0] == ALGO_COLOURS["algd-vesde"]
    from algd.algos.registry import algo_origin, list_algos

    # every built-in algorithm has a colour of its own, none shared with another
    assert {s.name for s in list_algos() if algo_origin(s.name).startswith("algd.")} <= set(
        ALGO_COLOURS)
    assert len(set(ALGO_COLOURS.values())) == len(ALGO_COLOURS)


def test_run_curves_say_what_they_show(sweep, tmp_path):
    """The learning-curve figure names its band and its cost (discounted or not), shows what
    drives λ next to it, and never shades a cost below zero (read back from its SVG text)."""

    from algd.analysis.plots import plot_run

    out = plot_run(sweep / "vesde" / "s0", 2.0, out=tmp_path / "c.svg", discounted_cost=True,
                   eval_episodes=7, threshold=1.25)
    text = out.read_text()
    for label in ("Discounted episode cost", "±1 s.d. over 7 episodes", "h = 1.25",
                  "drives λ", "limit 2"):
        assert label in text, label
    plain = plot_run(sweep / "vesde" / "s0", 2.0, out=tmp_path / "p.svg").read_text()
    assert "Episode cost" in plain and "Discounted" not in plain


def test_lambda_panel_legend_keeps_off_the_cost_estimate(tmp_path):
    """The λ panel's legend is placed clear of the twin axis's Q̄c points too, not only of λ
    (matplotlib's "best" sees one axes' lines; here Q̄c runs along the top, where λ leaves room)."""
    import csv

    from algd.analysis.plots import run_figure

    steps = np.arange(0, 11_000, 1000)
    lam = 0.7 * np.exp(-steps / 2500)  # top left to bottom right on a log axis
    qc = np.r_[np.nan, 2.9 + 0.05 * np.sin(steps[1:])]
    with open(tmp_path / "metrics.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["env_steps", "eval_return", "eval_return_std", "eval_cost", "eval_cost_std",
                    "train_return", "train_cost", "lambda", "qc_ucb"])
        for i, step in enumerate(steps):
            w.writerow([step, i, 1, 1, 0.5, i, 1, lam[i], qc[i]])
    fig = run_figure(tmp_path, 2.0, threshold=1.0)
    ax = fig.axes[2]
    twin = next(a for a in fig.axes[3:] if a.bbox.bounds == ax.bbox.bounds)
    fig.canvas.draw()
    box = ax.get_legend().get_window_extent()
    q = twin.get_lines()[0]
    points = q.get_transform().transform(q.get_xydata())
    assert not any(box.contains(*p) for p in points if np.isfinite(p).all())
    lam_points = ax.get_lines()[0].get_transform().transform(ax.get_lines()[0].get_xydata())
    assert not any(box.contains(*p) for p in lam_points)
    assert ax.get_ylim()[0] < lam.min() and ax.get_yscale() == "log"  # the copies moved nothing


def test_drawing_figures_leaves_the_users_matplotlib_backend_alone(sweep, tmp_path):
    """A notebook's backend (inline display) must survive algd's plotting: figures are drawn
    without pyplot, and what run_figure returns is an ordinary Figure."""
    import matplotlib
    from matplotlib.figure import Figure

    from algd.analysis.compare import plot_comparison
    from algd.analysis.plots import plot_run, run_figure

    before = matplotlib.get_backend()
    try:
        matplotlib.use("svg")
        assert isinstance(run_figure(sweep / "vesde" / "s0", 2.0), Figure)
        plot_run(sweep / "vesde" / "s0", 2.0, out=tmp_path / "c.png")
        plot_comparison(group_runs(load_runs([sweep])), tmp_path / "cmp.png")
        assert matplotlib.get_backend() == "svg"
        assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    finally:
        matplotlib.use(before)


def test_step_axis_labels_are_compact():
    from matplotlib.figure import Figure

    from algd.analysis.plots import format_steps

    ax = Figure().subplots()
    format_steps(ax)
    fmt = ax.xaxis.get_major_formatter()
    assert [fmt(x, 0) for x in (0, 500, 2500, 10_000, 1_500_000)] == ["0", "500", "2.5k", "10k",
                                                                      "1.5M"]


def test_cost_band_is_clipped_at_zero():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from algd.analysis.plots import _band

    fig, ax = plt.subplots()
    _band(ax, np.arange(3), [0.5, 0.2, 3.0], [1.0, 1.0, 1.0], "tab:blue", "band", floor=0.0)
    verts = ax.collections[0].get_paths()[0].vertices
    assert verts[:, 1].min() == 0.0 and verts[:, 1].max() == pytest.approx(4.0)
    plt.close(fig)


def test_curves_shade_the_warm_up(sweep, tmp_path):
    """The warm-up (no updates yet; the paper's x-axes start after it) is shaded on every
    learning-curve panel, one run's and the comparison's, and the figures say what the shade is."""
    from matplotlib.colors import to_rgb

    from algd.analysis.compare import comparison_figure
    from algd.analysis.plots import WARMUP_COLOUR, run_figure

    def warmup_spans(ax):  # (x0, x1) of each patch in the warm-up colour
        spans = [p for p in ax.patches if p.get_facecolor()[:3] == to_rgb(WARMUP_COLOUR)]
        return [tuple(p.get_path().get_extents(p.get_patch_transform()).intervalx)
                for p in spans]

    fig = run_figure(sweep / "vesde" / "s0")
    for ax in fig.axes[:3]:
        assert warmup_spans(ax) == [(0, TINY["warmup_steps"])]
    assert "warm-up (no updates)" in [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    fig = comparison_figure(group_runs(load_runs([sweep])), reps=50)
    assert all(warmup_spans(ax) == [(0, TINY["warmup_steps"])] for ax in fig.axes[:3])
    assert "grey: the warm-up" in fig._suptitle.get_text()
