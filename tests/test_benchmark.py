import json
import os
import subprocess
import sys

import pytest

from stages import KERNEL_PINS, augment, prepare
from stages.tools import benchmark
from tests.conftest import synthetic_params, write_params


def test_reference_matches_the_assignment_shape():
    model = benchmark.Reference(latent_channels=8)
    x = __import__("torch").rand(2, 3, 64, 64)
    assert model.encoder(x).shape == (2, 8, 4, 4) and model(x)[0].shape == x.shape
    assert model.encode(x).shape == (2, 128) and model.decode(model.encode(x)).shape == x.shape


def run_benchmark(*argv):
    """As a user runs it: a process of its own, which lifts the kernel pins before torch's first kernel."""
    subprocess.run([sys.executable, "-m", "stages.tools.benchmark", *argv], check=True, capture_output=True)


def test_benchmark_writes_both_models_per_budget_and_the_aux_comparison(workdir, valhalla_parquet):
    write_params(workdir, synthetic_params(valhalla_parquet))
    prepare.main()
    augment.main()
    run_benchmark("--budgets", "16", "32", "--reference-epochs", "1")
    result = json.loads((workdir / "reports/benchmark.json").read_text())
    # Measured unpinned, with the kernels torch picks on this CPU by itself, and denormals flushed.
    unpinned = {k: v for k, v in os.environ.items() if k not in KERNEL_PINS}
    probe = "import torch; torch.ones(4).sum(); print(torch.backends.cpu.get_cpu_capability())"
    own_choice = subprocess.run([sys.executable, "-c", probe], env=unpinned, capture_output=True, text=True, check=True).stdout.strip()
    assert result["cpu_capability"] == own_choice and result["denormals_flushed"] is True
    # The settings as they ran: the warped one in bfloat16 only where this CPU has it in hardware.
    probe = "from stages.tools import benchmark; import json; benchmark.measure_at_full_speed(); print(json.dumps(benchmark.settings_here()))"
    assert result["settings"] == json.loads(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout)
    assert [row["latent"] for row in result["budgets"]] == [16, 32]
    for row in result["budgets"]:
        assert row["ratio"] == row["project_refined_test_mse"] / row["reference_one_pass_test_mse"]
        assert row["ratio_both_refined"] == row["project_refined_test_mse"] / row["reference_refined_test_mse"]
        assert row["reference_images_per_s"] > 0 and row["project_params"] > 0
        by_setting = row["project_refined_val_mse_by_setting"]
        assert set(by_setting) == set(benchmark.SETTINGS) and len(set(by_setting.values())) == len(by_setting)  # each trained, differently
        assert by_setting[row["project_setting"]] == min(by_setting.values())
        assert row["project_epochs"] == 2 * benchmark.SETTINGS[row["project_setting"]].get("epoch_factor", 1)  # params: 2
        assert abs(row["project_refined_val_mse"] - min(by_setting.values())) < 1e-6  # the kept model
    aux, default = result["aux"], result["budgets"][0]  # the synthetic params' latent is 16
    assert (aux["latent"], aux["setting"], aux["epochs"]) == (16, default["project_setting"], default["project_epochs"])
    assert aux["ae_test_mse"] == default["project_refined_test_mse"] and 0 <= aux["aux_test_accuracy"] <= 1
    assert aux["mse_ratio"] == aux["aux_test_mse"] / aux["ae_test_mse"]
    assert (workdir / "reports/benchmark/rate_distortion.png").stat().st_size > 1000

    # --aux-only retrains the aux model alone; with nothing changed it measures the same figures.
    run_benchmark("--aux-only")
    assert json.loads((workdir / "reports/benchmark.json").read_text()) == result


def test_aux_only_refuses_a_benchmark_measured_with_other_params(workdir, valhalla_parquet, monkeypatch, capsys):
    params = synthetic_params(valhalla_parquet)
    write_params(workdir, params)
    monkeypatch.setattr(sys, "argv", ["benchmark", "--aux-only"])
    prepare.main()
    augment.main()
    with pytest.raises(SystemExit):
        benchmark.run_stage(benchmark.main)
    assert "reports/benchmark.json, which does not exist: run `python -m stages.tools.benchmark` first" in capsys.readouterr().err

    stale = {"params": benchmark.measured_with(benchmark.benchmarked_params()),
             "settings": benchmark.settings_here(), "budgets": [], "aux": {}}
    stale["params"]["train"]["lr"] *= 2
    (workdir / "reports/benchmark.json").write_text(json.dumps(stale))
    params["aux"]["lambda"] = 0.5  # what --aux-only is for: no complaint about it
    write_params(workdir, params)
    with pytest.raises(SystemExit):
        benchmark.run_stage(benchmark.main)
    assert "measured with other train; its autoencoder figures are stale" in capsys.readouterr().err
    assert json.loads((workdir / "reports/benchmark.json").read_text()) == stale


def test_aux_only_refuses_a_benchmark_measured_in_another_precision(workdir, valhalla_parquet, monkeypatch, capsys):
    write_params(workdir, synthetic_params(valhalla_parquet))
    prepare.main()
    augment.main()
    monkeypatch.setattr(benchmark, "bf16_is_native", lambda: True)  # measured on a CPU with AMX...
    measured = {"params": benchmark.measured_with(benchmark.benchmarked_params()), "settings": benchmark.settings_here(), "budgets": [], "aux": {}}
    (workdir / "reports/benchmark.json").write_text(json.dumps(measured))
    monkeypatch.setattr(benchmark, "bf16_is_native", lambda: False)  # ...re-run on one without
    monkeypatch.setattr(sys, "argv", ["benchmark", "--aux-only"])
    with pytest.raises(SystemExit):
        benchmark.run_stage(benchmark.main)
    assert "measured with other SETTINGS (or bfloat16 hardware); its autoencoder figures are stale" in capsys.readouterr().err


def test_the_warped_setting_runs_in_bfloat16_only_where_it_is_hardware(monkeypatch):
    monkeypatch.setattr(benchmark, "bf16_is_native", lambda: True)
    assert benchmark.settings_here() == benchmark.SETTINGS
    assert benchmark.setting_params(benchmark.benchmarked_params(), "warped").train.precision == "bf16"
    monkeypatch.setattr(benchmark, "bf16_is_native", lambda: False)
    here = benchmark.settings_here()
    assert here["warped"]["train"] == {**benchmark.SETTINGS["warped"]["train"], "precision": "fp32"}
    assert {k: v for k, v in here.items() if k != "warped"} == {k: v for k, v in benchmark.SETTINGS.items() if k != "warped"}
    assert benchmark.SETTINGS["warped"]["train"]["precision"] == "bf16"  # what it asks for is unchanged
    assert benchmark.setting_params(benchmark.benchmarked_params(), "warped").train.precision == "fp32"


@pytest.mark.parametrize("argv, message", [
    (["--budgets", "32"], "--budgets must include latent 16 (params.yaml), where the aux model is compared"),
    (["--budgets", "16", "18", "0"], "--budgets 18 0: the reference's latent is a 2x2xC grid at 32 px, so each budget must be a positive multiple of 4"),
    (["--budgets", "16", "32", "16"], "--budgets 16 32 16 lists a budget twice: give each once"),
    (["--budgets", "16", "--reference-epochs", "0"], "--reference-epochs is 0; train the reference for at least 1 epoch"),
])
def test_benchmark_refuses_arguments_it_cannot_measure_before_training(workdir, valhalla_parquet, monkeypatch, capsys, argv, message):
    params = synthetic_params(valhalla_parquet)
    params["data"]["size"] = 32
    write_params(workdir, params)
    monkeypatch.setattr(sys, "argv", ["benchmark", *argv])
    with pytest.raises(SystemExit) as exit_info:
        benchmark.run_stage(benchmark.main)
    assert exit_info.value.code == 1
    assert capsys.readouterr().err == f"error: {message}\n"
    assert not (workdir / "reports").exists()
