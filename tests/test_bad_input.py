"""Property: any configuration is either accepted and trains (exit 0, or exit 1 with the one-line
non-finite error when legal but extreme values blow the numbers up), or rejected with a one-line
error (exit 2) — never a traceback (issue 6)."""

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from algd.cli import main

NUM = st.one_of(
    st.integers(-3, 70),
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.sampled_from(["abc", "", "1e2", "-0", "nan", "inf", "none"]),
)
FIELDS = {
    "steps": st.integers(-2, 70),
    "warmup-steps": st.integers(-2, 70),
    "batch-size": st.integers(-2, 64),
    "buffer-size": st.integers(-2, 200),
    "utd": NUM,
    "num-envs": st.integers(-1, 3),
    "eval-every": st.integers(-1, 80),
    "eval-episodes": st.integers(-1, 3),
    "cost-limit": NUM,
    "diffusion-steps": st.integers(-1, 6),
    "rho": NUM,
    "mc-samples": st.integers(-1, 5),
    "temperature": NUM,
    "ucb-k": NUM,
    "gamma": NUM,
    "tau": NUM,
    "sigma-max": NUM,
    "variant": st.sampled_from(["vesde", "ddpm", "flow", ""]),
    "energy": st.sampled_from(["augmented", "lagrangian", "exact"]),
    "seed": st.integers(-2, 5),
}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from(sorted(FIELDS)), st.just(None), max_size=6).flatmap(
    lambda keys: st.fixed_dictionaries({k: FIELDS[k] for k in keys})))
def test_random_configs_run_or_fail_with_a_one_line_error(tmp_path_factory, capsys, values):
    out = tmp_path_factory.mktemp("prop") / "run"
    argv = ["train", "--out", str(out), "--progress", "false", "--plot", "false",
            "--policy-hidden", "8", "--critic-hidden", "8,8", "--checkpoint", "false"]
    values.setdefault("steps", 40)
    values.setdefault("warmup-steps", 20)
    values.setdefault("batch-size", 16)
    values.setdefault("eval-episodes", 1)
    for k, v in values.items():
        argv += [f"--{k}", str(v)]
    code = main(argv)
    captured = capsys.readouterr()
    assert code in (0, 1, 2), captured.err
    if code == 1:  # accepted, then stopped cleanly by the non-finite guard (e.g. ucb_k = 1e11)
        err = captured.err.strip()
        assert "became non-finite" in err and len(err.splitlines()) == 1, err
    elif code == 2:
        err = captured.err.strip()
        assert err.startswith("algd: error:") and len(err.splitlines()) == 1, err
        assert "Traceback" not in err
        assert not (out / "metrics.csv").exists()  # rejected before anything was written
    else:
        assert (out / "summary.json").exists()
        # accepted values really were sane
        for k in ("rho", "temperature"):
            if k in values:
                assert math.isfinite(float(values[k])) and float(values[k]) > 0


def test_analysis_seeds_must_be_non_negative(tmp_path, capsys):
    """Every --seed flag names itself when refused (numpy's own message did not)."""
    for command in ("eval", "landscape", "modality", "video"):
        assert main([command, str(tmp_path), "--seed", "-1"]) == 2
        err = capsys.readouterr().err.strip()
        assert "argument --seed: expected an integer >= 0, got -1" in err, (command, err)


def test_unknown_names_are_config_errors_from_python_too():
    """The Python API gives the same error type as every other bad configuration."""
    from algd.config import ConfigError, TrainConfig
    from algd.envs import get_task
    from algd.train import train

    with pytest.raises(ConfigError, match="unknown algorithm 'nosuch'"):
        train(TrainConfig(algo="nosuch", steps=10))
    with pytest.raises(ConfigError, match="Did you mean PointDetour"):
        get_task("pointdetour")
    with pytest.raises(KeyError):  # and a KeyError for code that looks names up
        get_task("NoSuchTask")


def test_mistyped_gemm_variable_stops_before_the_run(tmp_path, capsys, monkeypatch):
    """ALGD_GEMM is checked when the trainer is built, not at the first product (by which time
    the run directory had been written)."""
    from algd.nets import gemm

    monkeypatch.setenv(gemm.ENV_VAR, "mkl")
    monkeypatch.setattr(gemm, "_requested", None)
    monkeypatch.setattr(gemm, "_resolved", None)
    out = tmp_path / "run"
    assert main(["train", "--out", str(out), "--steps", "10", "--progress", "false"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("algd: error: ALGD_GEMM='mkl' is not one of auto, torch, onednn")
    assert len(err.splitlines()) == 1 and not out.exists()
