"""The benchmark harness. The default run checks that it works (tiny sizes, one round); the
timing-heavy run is marked ``bench`` and excluded by default (``pytest -m bench``). No test
asserts a timing ratio: timings depend on the machine and its load."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from apalu import bench

TINY = ["--shape", "2,4,3,3", "--sizes", "2048", "--repeats", "1", "--warmup", "0", "--batch", "2",
        "--no-compile", "--threads", "1", "--skip", "overhead"]


def test_cli_help(capsys):
    with pytest.raises(SystemExit) as e:
        bench.main(["--help"])
    assert e.value.code == 0
    assert "--device" in capsys.readouterr().out


def test_cli_smoke_tiny_writes_csvs_and_machine(tmp_path, capsys):
    rc = bench.main([*TINY, "--out", str(tmp_path)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "ratio_to_gelu" in text and "saved_inputs_per_layer" in text and "## targets" in text
    for name in ("ops_cpu.csv", "memory_cpu.csv", "e2e_cpu.csv", "flops.csv", "modules_cpu.csv",
                 "steps_cpu.csv", "targets_cpu.csv"):
        rows = list(csv.DictReader((tmp_path / name).open()))
        assert rows, name
    ops = list(csv.DictReader((tmp_path / "ops_cpu.csv").open()))
    labels = {r["label"] for r in ops}
    for want in ("gelu (native)", "relu (native)", "leaky_relu (native)", "prelu (native, scalar)",
                 "elu (native)", "gelu_tanh (native)", "silu (native)",
                 "apalu (reference eager, scalar)", "apalu (lean eager, per-channel)",
                 "apalu (ATen eager, scalar)", "copy (preallocated)"):
        assert want in labels
    gelu = [r for r in ops if r["label"] == "gelu (native)"]
    assert all(float(r["ratio_to_gelu"]) == 1.0 for r in gelu)
    targets = list(csv.DictReader((tmp_path / "targets_cpu.csv").open()))
    assert {r["verdict"] for r in targets} <= {"met", "not met", ""}
    assert any(r["group"] == "small tensors" for r in targets)
    machine = json.loads((tmp_path / "machine.json").read_text())
    assert machine["cpu"]["torch_threads"] == 1 and "loadavg_before" in machine["cpu"]
    assert "CPU kernel" in machine["cpu"]["apalu_cpu_kernel"]


def test_cuda_without_a_gpu_fails_in_one_line(capsys):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(SystemExit) as e:
        bench.main(["--device", "cuda", *TINY])
    msg = str(e.value.code)
    assert "--device cuda needs a CUDA GPU" in msg and "\n" not in msg


def test_unknown_part_is_refused():
    with pytest.raises(SystemExit, match="unknown part"):
        bench.main(["--skip", "opz"])


def test_interleaved_timing_shape():
    calls = []
    t = bench.time_rounds({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                          repeats=3, warmup=1, device=torch.device("cpu"))
    assert calls == ["a", "b"] + ["a", "b"] * 3  # warm-up, then rounds interleaved
    assert len(t["a"]) == len(t["b"]) == 3


def test_inner_calls_per_sample():
    calls = []
    t = bench.time_rounds({"a": lambda: calls.append(1)}, repeats=2, warmup=0,
                          device=torch.device("cpu"), inner=5)
    assert len(calls) == 10 and len(t["a"]) == 2


def test_module_table_ratios_to_matching_prelu():
    rows = bench.module_table(sizes=(2048,), repeats=2, warmup=0)
    keyed = {(r["activation"], r["params"], r["direction"]): r for r in rows}
    assert len(rows) == 7 * 2
    for d in ("forward", "forward+backward"):
        assert keyed[("gelu", "none", d)]["ratio_to_gelu"] == 1.0
        assert keyed[("prelu", "scalar", d)]["ratio_to_prelu"] == 1.0
        assert keyed[("prelu", "per-channel", d)]["ratio_to_prelu"] == 1.0
    assert keyed[("apalu", "per-channel", "forward")]["shape"] == "64x32"


def test_mlp_step_table_has_relu_prelu_apalu():
    rows = bench.mlp_step_table(batch=4, repeats=1, warmup=0, device=torch.device("cpu"), inner=1)
    keyed = {(r["activation"], r["params"]): r for r in rows}
    assert keyed[("relu", "none")]["ratio_to_relu"] == 1.0
    assert {("prelu", "scalar"), ("apalu", "scalar"), ("apalu", "per-channel")} <= set(keyed)
    assert all(r["optimizer"] == "Adam (fused)" and r["model"] == "MLP 3x32" for r in rows)
    # four Linear layers (weight, bias); PReLU adds one tensor per activation, APALU two
    tensors = {k: r["param_tensors"] for k, r in keyed.items()}
    assert (tensors[("relu", "none")], tensors[("prelu", "scalar")], tensors[("apalu", "scalar")]) == (8, 11, 14)
    assert all(0 < r["update_ms"] for r in rows)


@pytest.mark.parametrize("direction", ["forward+backward", "forward"])
@pytest.mark.parametrize("module", ["apalu", "prelu"])
def test_overhead_breakdown_components_add_up(module, direction):
    rows = {r["component"]: r for r in bench.breakdown(module, calls=5, repeats=2, direction=direction)}
    assert {r["direction"] for r in rows.values()} == {direction}
    assert list(rows) == ["Python", "dispatch", "softplus", "kernel"]
    assert sum(r["share"] for r in rows.values()) == pytest.approx(1.0, rel=1e-6)
    assert rows["kernel"]["us_per_call_profiled"] > 0  # the elementwise work is found
    if module == "prelu":
        assert rows["softplus"]["us_per_call_profiled"] == 0  # PReLU has no constraint


def test_memory_table_lean_apalu_saves_one_input_like_gelu():
    rows = {r["activation"]: r for r in bench.memory_table(width=16, depth=4, batch=8, compile=False)}
    assert rows["gelu"]["saved_inputs_per_layer"] == pytest.approx(1.0)
    assert rows["apalu (lean eager)"]["saved_inputs_per_layer"] == pytest.approx(1.0, abs=0.05)
    assert rows["apalu (ATen eager)"]["saved_inputs_per_layer"] == pytest.approx(1.0, abs=0.05)
    assert rows["apalu (reference eager)"]["saved_inputs_per_layer"] > 2


def test_flop_table_counts_known_activations():
    rows = {r["activation"]: r for r in bench.flop_table()}
    assert rows["relu"]["forward_arith"] == 1 and rows["relu"]["forward_transcendental"] == 0
    assert rows["gelu"]["forward_transcendental"] == 1  # erf
    for r in rows.values():
        assert r["unknown_ops"] == "", r  # every op in the graphs is classified
    assert rows["apalu (single-exp form, inductor)"]["forward_transcendental"] == 1  # the single exp
    assert rows["apalu (ATen eager)"]["forward_transcendental"] >= 2  # one per branch


def test_bytes_bound():
    assert bench.bytes_bound(10) == {"forward": 80, "forward+backward": 200}


@pytest.mark.bench
def test_bench_full_size_cpu(tmp_path):
    """The benchmark at the issue's size (64x256x32x32, float32); records, asserts nothing about
    speed. Run with ``pytest -m bench``."""
    rc = bench.main(["--repeats", "5", "--skip", "compile-cost", "--out", str(tmp_path)])
    assert rc == 0
    assert (tmp_path / "ops_cpu.csv").exists()


def test_case_has_no_unused_extra_field():
    from dataclasses import fields

    assert [f.name for f in fields(bench.Case)] == ["name", "impl", "params", "make", "compiled", "context"]


def test_the_bench_names_how_apalu_is_called(monkeypatch):
    from apalu import _ext
    from apalu.bench import modules

    if _ext.available():
        assert modules.calls_note() == modules.CALLS_NOTE and "eager entry" in modules.CALLS_NOTE
    monkeypatch.setattr(_ext, "_STATE", {"tried": True, "module": None, "error": "no compiler"})
    assert "without its C++ kernel" in modules.calls_note()


def test_overhead_breakdown_refuses_an_unknown_direction():
    with pytest.raises(ValueError, match="unknown direction 'backward'"):
        bench.breakdown("apalu", calls=1, repeats=1, direction="backward")
