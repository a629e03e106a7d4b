"""``python -m apalu.bench``: run the parts of the bench, print them with the targets, and with
``--out DIR`` write their CSVs and the machine description there (the only writer of
``data/bench/``)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from pathlib import Path

import torch

from .cases import activation_cases, copy_bandwidth, run_cases
from .compile_cost import compile_cost
from .machine import machine_info
from .memory import memory_table
from .modules import SIZES, calls_note, module_table
from .opcount import flop_table
from .output import text_table, write_csv
from .overhead import breakdown, breakdown_at_ref
from .steps import e2e_table, mlp_step_table
from .targets import judge
from .timing import threads

__all__ = ["PARTS", "main"]

PARTS = ("ops", "modules", "steps", "e2e", "memory", "flops", "compile-cost", "overhead")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m apalu.bench",
        description="Time APALU against ReLU, LeakyReLU, PReLU, ELU, GELU (exact, tanh), SiLU, side "
        "by side and interleaved: large-tensor forward and forward+backward (like for like, with "
        "copy bandwidth), the layers from 2k to 16M elements, the MLP and CNN training steps, saved "
        "memory, op counts, compile cost and the per-call overhead; prints every target as met or "
        "not met.",
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: cpu)")
    p.add_argument("--dtype", default="float32", choices=sorted(DTYPES),
                   help="dtype of the large-tensor cases (default: float32)")
    p.add_argument("--shape", default="64,256,32,32", help="large-tensor input shape (default: 64,256,32,32)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all cores)")
    p.add_argument("--small-threads", type=int, default=1,
                   help="threads for the layer sizes, the MLP step and the overhead (default: 1, "
                   "as the book's training notebooks)")
    p.add_argument("--sizes", default=",".join(map(str, SIZES)),
                   help="elements of the layer-size sweep (default: 2k to 16M)")
    p.add_argument("--repeats", type=int, default=15, help="timed rounds (default: 15)")
    p.add_argument("--warmup", type=int, default=2, help="untimed calls per case first (default: 2)")
    p.add_argument("--batch", type=int, default=64, help="batch of the training steps (default: 64)")
    p.add_argument("--e2e-repeats", type=int, default=None, help="rounds of the CNN step (default: --repeats)")
    p.add_argument("--no-compile", action="store_true", help="skip every torch.compile case")
    p.add_argument("--skip", default="", help=f"comma list of parts to skip: {','.join(PARTS)}")
    p.add_argument("--overhead-before", default=None, metavar="GIT_REF",
                   help="also break down the per-call overhead of APALU as it was at this git "
                   "revision (the 'before' of the Cost chapter)")
    p.add_argument("--out", default=None, help="directory for the CSVs and machine.json")
    return p


def _check_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name not in ("cpu", "cuda"):
        raise SystemExit(f"python -m apalu.bench: unknown --device {name!r}; known: cpu, cuda, auto")
    if name == "cuda" and not torch.cuda.is_available():
        why = "torch is built without CUDA" if torch.version.cuda is None else "no CUDA device is visible"
        raise SystemExit(f"python -m apalu.bench: --device cuda needs a CUDA GPU, and {why} "
                         f"(torch {torch.__version__}); run on a GPU machine or use --device cpu")
    return torch.device(name)


def _print(title: str, rows: list[dict], cols: list[str]) -> None:
    print(f"\n## {title}")
    print(text_table(rows, cols))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    device = _check_device(args.device)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if skip - set(PARTS):
        raise SystemExit(f"python -m apalu.bench: unknown part(s) in --skip: {sorted(skip - set(PARTS))}; "
                         f"known: {', '.join(PARTS)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    shape = tuple(int(s) for s in args.shape.split(","))
    sizes = tuple(int(s) for s in args.sizes.split(","))
    compile = not args.no_compile
    info = machine_info(device)
    info["loadavg_before"] = list(os.getloadavg())
    info["small_threads"] = args.small_threads
    out = Path(args.out) if args.out else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    tag = device.type
    results: dict[str, list[dict]] = {}

    def done(part: str, rows: list[dict]) -> None:
        """Keep a part's rows, and write its CSV at once: a long run interrupted later keeps it."""
        results[part] = rows
        if out:
            write_csv(out / (f"{part}.csv" if part == "flops" else f"{part}_{tag}.csv"), rows)

    print(f"# {info['cpu']} | {info['torch_threads']} threads | torch {info['torch']} | device {tag}"
          + (f" ({info['gpu']})" if "gpu" in info else "") + f" | load {info['loadavg_before']}")

    if "ops" not in skip:
        rows = run_cases(activation_cases(compile, device), shape, args.repeats, args.warmup, device,
                         DTYPES[args.dtype])
        done("ops", rows)
        bw = copy_bandwidth(rows, DTYPES[args.dtype].itemsize)
        _print(f"elementwise cost, shape {args.shape}, {args.dtype}, {args.repeats} rounds "
               f"(copy bandwidth {bw / 1e9:.1f} GB/s)", rows,
               ["label", "direction", "median_ms", "iqr_ms", "ratio_to_gelu", "round_ratio_iqr",
                "fraction_of_bound"])
    if "modules" not in skip:
        with threads(args.small_threads):
            done("modules", module_table(sizes, args.repeats, args.warmup, device))
        _print(f"layers by size ({args.small_threads} thread(s)), µs per call", results["modules"],
               ["activation", "params", "direction", "elements", "median_us", "ratio_to_gelu",
                "ratio_to_prelu"])
        info["apalu_calls"] = calls_note()
        print(f"# {info['apalu_calls']}")
    if "steps" not in skip:
        with threads(args.small_threads):
            done("steps", mlp_step_table(args.batch, args.repeats, args.warmup, device))
        _print(f"one training step, MLP 3x32, Adam, batch {args.batch}", results["steps"],
               ["activation", "params", "median_ms", "iqr_ms", "ratio_to_relu", "update_ms",
                "param_tensors"])
    if "e2e" not in skip:
        reps = args.e2e_repeats or args.repeats
        done("e2e", e2e_table(args.batch, reps, args.warmup, device, compile))
        _print(f"one training step, SmallCNN, SGD, batch {args.batch}", results["e2e"],
               ["mode", "activation", "params", "median_ms", "iqr_ms", "ratio_to_relu"])
    if "memory" not in skip:
        done("memory", memory_table(device=device, compile=compile))
        _print("saved for backward, 20-layer MLP (width 256, batch 64), per activation layer",
               results["memory"], ["activation", "saved_inputs_per_layer", "extra_unique_inputs_per_layer"])
    if "flops" not in skip:
        done("flops", flop_table())
        _print("elementwise operations per element (counted in the aten graph)", results["flops"],
               ["activation", "forward_arith", "forward_transcendental", "fwdbwd_arith",
                "fwdbwd_transcendental"])
    if compile and "compile-cost" not in skip:
        done("compile", compile_cost(shape, device) + compile_cost(shape, device, per_channel=True))
        _print("compile cost of the compiled APALU (forward+backward), fresh process",
               results["compile"], ["cache", "params", "first_call_s", "second_call_s"])
    if "overhead" not in skip and device.type == "cpu":
        with threads(args.small_threads):
            rows = [{**r, "version": "this tree"} for d in ("forward+backward", "forward")
                    for m in ("apalu", "prelu") for r in breakdown(m, repeats=args.repeats, direction=d)]
            if args.overhead_before:
                repo = Path(__file__).resolve().parents[2]
                rev = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", args.overhead_before],
                                     capture_output=True, text=True).stdout.strip() or args.overhead_before
                rows = breakdown_at_ref(rev, repo, repeats=args.repeats) + rows
        done("overhead", rows)
        _print("per-call overhead of a 64x32 layer (µs, torch.profiler; forward under inference_mode)",
               rows, ["version", "module", "direction", "component", "us_per_call_estimated", "share",
                      "unprofiled_us_per_call"])
    done("targets", judge(results, tag))
    _print("targets", results["targets"], ["group", "ratio", "measured", "target", "verdict"])
    info["loadavg_after"] = list(os.getloadavg())
    print(f"\n# load average after: {info['loadavg_after']}")
    if out:
        mpath = out / "machine.json"
        machines = json.loads(mpath.read_text()) if mpath.exists() else {}
        machines[tag] = info
        mpath.write_text(json.dumps(machines, indent=2, sort_keys=True) + "\n")
        print(f"# wrote {', '.join(sorted(results))} to {out}")
    return 0
