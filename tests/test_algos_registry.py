"""Every algorithm is reachable: registry, `algd algos`, `algd train --help`, presets, runs."""

import csv
import dataclasses

import numpy as np
import pytest

from algd.algos import get_algo, list_algos
from algd.algos.registry import algo_field_names
from algd.cli import main, resolve_train_args
from algd.config import ConfigError, list_presets
from algd.train import Trainer
from algd.train.checkpoint import load_run

ALGOS = ["algd-vesde", "algd-ddpm", "lgd-vesde", "lgd-ddpm", "sac-lag", "sac-auglag", "cal"]
SAC_FAMILY = ["sac-lag", "sac-auglag", "cal"]


def test_registry_holds_every_algorithm():
    names = [spec.name for spec in list_algos()]
    assert set(ALGOS) <= set(names)
    for spec in list_algos():
        assert spec.description and get_algo(spec.name) is spec


def test_algos_command_and_train_help_list_every_algorithm(capsys):
    assert main(["algos"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for name in ALGOS:
        line = next(ln for ln in lines if ln.split()[0] == name)
        assert len(line.split()) > 3  # a one-line description follows the name
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--help"])
    assert exit_.value.code == 0
    help_text = " ".join(capsys.readouterr().out.split())
    for name in ALGOS:
        assert name in help_text


@pytest.mark.parametrize("algo,flags", [
    ("cal", ["--convexity", "--alpha-lr", "--target-entropy", "--actor-hidden", "--ucb-k",
             "--cost-ensemble-size"]),
    ("lgd-ddpm", ["--rho", "--mc-samples", "--diffusion-steps", "--temperature", "--ucb-k",
                  "--cost-ensemble-size", "--energy"]),
])
def test_algorithm_help_shows_its_own_flags(capsys, algo, flags):
    with pytest.raises(SystemExit):
        main(["train", "--algo", algo, "--help"])
    text = capsys.readouterr().out
    for flag in flags:
        assert flag in text, flag


def test_help_marks_the_values_that_define_an_algorithm_and_names_the_others(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--algo", "lgd-ddpm", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(fixed: ddpm; vesde: --algo lgd-vesde)" in text
    assert "(fixed: lagrangian; augmented: --algo algd-ddpm)" in text
    assert main(["train", "--algo", "lgd-ddpm", "--energy", "augmented"]) == 2
    assert "use --algo algd-ddpm" in capsys.readouterr().err


def test_help_with_a_preset_shows_the_presets_values_as_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--preset", "paper-hopper", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "with the defaults of --preset paper-hopper" in text
    assert "(default: HopperVelocity)" in text and "(default: 10.0)" in text  # env, utd
    assert "(default: 256,256)" in text  # the reference's critic widths


def test_ablation_knobs_are_flags():
    """The paper's ablations (spec §7.4): ρ, E, k, N, K, β — each a plain command-line flag."""
    _, cfg = resolve_train_args(["--algo", "lgd-vesde", "--rho", "4", "--cost-ensemble-size", "8",
                                 "--ucb-k", "0", "--mc-samples", "16", "--diffusion-steps", "10",
                                 "--temperature", "0.5"])
    assert (cfg.rho, cfg.cost_ensemble_size, cfg.ucb_k, cfg.mc_samples, cfg.diffusion_steps,
            cfg.temperature, cfg.energy) == (4.0, 8, 0.0, 16, 10, 0.5, "lagrangian")
    _, cfg = resolve_train_args(["--algo", "cal", "--convexity", "100", "--cost-ensemble-size",
                                 "8", "--ucb-k", "0.5"])
    assert (cfg.convexity, cfg.cost_ensemble_size, cfg.ucb_k) == (100.0, 8, 0.5)
    # another algorithm's flag: named, with the algorithms that have it
    with pytest.raises(ConfigError, match="sac-lag has no option --rho; it is an option of "
                                          "algd-ddpm, algd-vesde, lgd-ddpm, lgd-vesde"):
        resolve_train_args(["--algo", "sac-lag", "--rho", "2"])
    with pytest.raises(ConfigError, match="unrecognized arguments: --bogus 1"):
        resolve_train_args(["--bogus", "1"])


@pytest.mark.parametrize("algo", ALGOS)
def test_every_preset_applies_to_every_algorithm_and_keeps_its_identity(algo):
    spec = get_algo(algo)
    for preset in list_presets():
        train_cfg, algo_cfg = resolve_train_args(["--preset", preset.name, "--algo", algo])
        for key, value in spec.defaults.items():  # what defines the algorithm survives
            assert getattr(algo_cfg, key) == value, (preset.name, key)
        for key, value in preset.values.items():  # what the algorithm has is applied
            expected = tuple(value) if isinstance(value, list) else value
            if hasattr(algo_cfg, key):
                assert getattr(algo_cfg, key) == expected, (preset.name, key)
            elif hasattr(train_cfg, key):
                assert key == "algo" or getattr(train_cfg, key) == expected, (preset.name, key)
            else:  # skipped: it belongs to another algorithm
                assert key in algo_field_names(), (preset.name, key)


def test_paper_preset_sizes_each_family():
    _, sac = resolve_train_args(["--preset", "paper", "--algo", "cal"])
    _, diff = resolve_train_args(["--preset", "paper", "--algo", "lgd-vesde"])
    assert sac.actor_hidden == (256, 256) and sac.critic_hidden == (256, 256)
    assert sac.alpha_lr == 3e-4 and (sac.cost_ensemble_size, sac.ucb_k) == (4, 1.0)
    assert diff.policy_hidden == 128 and diff.critic_hidden == (256, 256)


def test_preset_field_that_no_algorithm_has_is_an_error(tmp_path, monkeypatch, capsys):
    (tmp_path / "typo.yaml").write_text("description: x\nrhoo: 2\n")
    monkeypatch.setattr("algd.config.PRESET_DIR", tmp_path)
    with pytest.raises(ConfigError, match="no algorithm has: \\['rhoo'\\]"):
        resolve_train_args(["--preset", "typo"])
    assert main(["train", "--preset", "typo", "--out", str(tmp_path / "r")]) == 2
    assert "rhoo" in capsys.readouterr().err


# -- the SAC family through the trainer, checkpoints and the command line ----------------------------
TINY = dict(steps=300, warmup_steps=100, eval_every=100, eval_episodes=2, batch_size=32,
            progress=False, plot=False)


@pytest.mark.parametrize("algo", SAC_FAMILY)
def test_cli_run_logs_sac_diagnostics_and_reloads(tmp_path, capsys, algo):
    out = tmp_path / algo
    code = main(["train", "--algo", algo, "--steps", "300", "--warmup-steps", "100",
                 "--eval-every", "100", "--eval-episodes", "2", "--batch-size", "32",
                 "--actor-hidden", "16,16", "--critic-hidden", "16,16", "--progress", "false",
                 "--plot", "false", "--out", str(out)])
    assert code == 0 and "final evaluation" in capsys.readouterr().out
    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    last = rows[-1]
    for col in ("alpha", "entropy", "cost_weight", "critic_loss", "actor_loss", "qc_ucb"):
        assert last[col] != "", col
    assert float(last["alpha"]) < 1.0  # α moved down from 1 (entropy above −|A| early on)
    run = load_run(out)
    assert dataclasses.asdict(run.algo_cfg)["actor_hidden"] == (16, 16)
    obs = np.random.default_rng(0).normal(size=(4, 5)).astype(np.float32)
    again = load_run(out)
    np.testing.assert_array_equal(run.agent.act_np(obs, True), again.agent.act_np(obs, True))
    assert float(run.agent.lagrange_multiplier) == pytest.approx(float(last["lambda"]), rel=1e-5)


def test_cal_same_seed_identical_metrics(tmp_path):
    def rows(name, seed):
        cfg = get_algo("cal").make_config({"actor_hidden": (16, 16), "critic_hidden": (16, 16)})
        from algd.config import TrainConfig

        res = Trainer(TrainConfig(algo="cal", seed=seed, out=str(tmp_path / name), **TINY),
                      cfg).run()
        with open(res.run_dir / "metrics.csv") as f:
            return [{k: v for k, v in r.items()
                     if k not in ("updates_per_s", "env_steps_per_s", "wall_s")}
                    for r in csv.DictReader(f)]

    a, b, c = rows("a", 3), rows("b", 3), rows("c", 4)
    assert a == b and a != c


def test_register_rejects_a_config_without_the_discounts():
    """The training loop reads gamma/cost_gamma from every algorithm's config: a config without
    them is refused when it is registered, not with an AttributeError mid-run."""
    from algd.algos.registry import AlgoSpec, register_algo
    from algd.algos.sac_lag import SACLag

    @dataclasses.dataclass
    class NoDiscounts:
        lr: float = 3e-4

    with pytest.raises(TypeError, match="lacks gamma, cost_gamma"):
        register_algo(AlgoSpec("no-discounts", SACLag, NoDiscounts))
    with pytest.raises(TypeError, match="must be a dataclass"):
        register_algo(AlgoSpec("not-a-dataclass", SACLag, dict))
    assert "no-discounts" not in {s.name for s in list_algos()}


def test_other_variants_settings_are_named_as_unused(capsys):
    """--sigma-max means nothing to the DDPM chain, --guidance-scale nothing to the VE one: the
    run is accepted (a sweep may grid over them) and the note says so."""
    _, cfg = resolve_train_args(["--algo", "algd-ddpm", "--sigma-max", "2"])
    assert cfg.ignored_fields() == ["sigma_max"]
    assert "algd-ddpm does not use --sigma-max" in capsys.readouterr().err
    _, cfg = resolve_train_args(["--algo", "lgd-vesde", "--guidance-scale", "0.1",
                                 "--sigma-max", "2"])
    assert cfg.ignored_fields() == ["guidance_scale"]
    capsys.readouterr()
    _, cfg = resolve_train_args(["--algo", "algd-vesde"])
    assert cfg.ignored_fields() == [] and "does not use" not in capsys.readouterr().err


def test_a_categorical_defining_value_cannot_be_overridden():
    """lgd-vesde with energy=augmented would be ALGD under LGD's name (in run directories, plots
    and reports); numeric defining values stay open (CAL's Ant setting: E = 8, c = 100)."""
    from algd.config import ConfigError

    with pytest.raises(ConfigError, match="defined by energy=lagrangian.*--algo algd-vesde"):
        get_algo("lgd-vesde").make_config({"energy": "augmented"})
    with pytest.raises(ConfigError, match="defined by variant=ddpm.*--algo algd-vesde"):
        get_algo("algd-ddpm").make_config({"variant": "vesde"})
    cal = get_algo("cal").make_config({"convexity": 100.0, "cost_ensemble_size": 8})
    assert (cal.convexity, cal.cost_ensemble_size) == (100.0, 8)
    assert get_algo("lgd-vesde").make_config({"energy": "lagrangian"}).energy == "lagrangian"
