"""The performance targets, judged from one run's rows: each line says met or not met.

Every ratio is measured side by side in the same run (interleaved rounds), never against a
stored number. Lines without a target are reported for context (verdict ""). The Cost chapter
renders the ``targets_<device>.csv`` the bench writes from these rows.
"""

from __future__ import annotations

__all__ = ["TARGETS", "judge"]

# target: ratio ≤ value
TARGETS = {
    "small_vs_prelu": 1.2,  # module fwd+bwd and inference forward at 2k and 16k elements
    "mlp_step_vs_relu": 1.25,  # the book's MLP (3 × 32, batch 64, Adam)
    "mlp_step_vs_prelu": 1.0,  # ... and no worse than PReLU
    "large_vs_gelu": 1.0,  # like for like, forward and forward+backward
    "compiled_vs_gelu": 1.05,  # compiled APALU against compiled and against eager GELU
    "per_channel_vs_scalar": 1.25,
    "saved_inputs_per_layer": 1.0,  # one input-sized tensor (+1% for a and b)
    "cnn_compiled_step_vs_relu": 1.10,
    "gpu_fused_vs_gelu": 1.3,  # the Triton kernel, forward+backward
}
SAVED_SLACK = 0.01
SMALL_SIZES = (2**11, 2**14)
HUGE_PAGE_RISK = ("reported, not a target: only APALU gets the advice; where no free 2 MiB page "
                  "is at hand the kernel's page fault compacts memory first, which can cost "
                  "more than it saves")


def _size(n: int) -> str:
    if n < 1024:
        return str(n)
    return f"{n // 1024}k" if n < 2**20 else f"{n // 2**20}M"


class _Lines:
    def __init__(self, device: str):
        self.device = device
        self.rows: list[dict] = []

    def judge(self, group: str, what: str, value: float, target: float, unit: str = "x",
              slack: float = 0.0) -> None:
        self.rows.append({"device": self.device, "group": group, "ratio": what,
                          "value": value, "measured": f"{value:.2f}{unit}",
                          "target": f"≤ {target:g}{unit}",
                          "verdict": "met" if value <= target + slack else "not met"})

    def report(self, group: str, what: str, value: float, note: str = "reported",
               unit: str = "x") -> None:
        self.rows.append({"device": self.device, "group": group, "ratio": what, "value": value,
                          "measured": f"{value:.2f}{unit}", "target": note, "verdict": ""})


def _index(rows: list[dict], *keys: str) -> dict[tuple, dict]:
    return {tuple(r[k] for k in keys): r for r in rows}


def _small(out: _Lines, modules: list[dict]) -> None:
    m = _index(modules, "activation", "params", "direction", "elements")
    for n in SMALL_SIZES:
        for params in ("scalar", "per-channel"):
            for direction, name in (("forward+backward", "module fwd+bwd"),
                                    ("forward", "forward, inference_mode")):
                r = m.get(("apalu", params, direction, n))
                if r:
                    out.judge("small tensors", f"APALU / PReLU, {name}, {_size(n)} elements, {params}",
                              r["ratio_to_prelu"], TARGETS["small_vs_prelu"])


def _steps(out: _Lines, steps: list[dict]) -> None:
    s = _index(steps, "activation", "params")
    for params in ("scalar", "per-channel"):
        apalu, prelu = s.get(("apalu", params)), s.get(("prelu", params))
        if not apalu:
            continue
        label = f"MLP {apalu['model'].split()[-1]} step (batch {apalu['batch']}, Adam), {params}"
        out.judge("training step", f"{label}: APALU / ReLU", apalu["ratio_to_relu"],
                  TARGETS["mlp_step_vs_relu"])
        if prelu:
            out.judge("training step", f"{label}: APALU / PReLU",
                      apalu["median_ms"] / prelu["median_ms"], TARGETS["mlp_step_vs_prelu"])
        if ("prelu", params) in s:
            out.report("training step", f"{label}: PReLU / ReLU", s[("prelu", params)]["ratio_to_relu"])
        if prelu and apalu.get("update_ms") and prelu.get("update_ms"):
            # where the step's time goes: Adam's update loops over parameter tensors
            note = (f"reported: parameter tensors APALU {apalu['param_tensors']}, "
                    f"PReLU {prelu['param_tensors']}")
            out.report("training step", f"{label}: Adam update alone, APALU / PReLU",
                       apalu["update_ms"] / prelu["update_ms"], note)
            rest = [r["median_ms"] - r["update_ms"] for r in (apalu, prelu)]
            if rest[1] > 0:
                out.report("training step", f"{label}: step without the update, APALU / PReLU",
                           rest[0] / rest[1])


def _cnn(out: _Lines, e2e: list[dict]) -> None:
    e = _index(e2e, "mode", "activation", "params")
    for params in ("scalar", "per-channel"):
        if ("compiled", "apalu", params) in e:
            out.judge("training step", f"CNN step (SGD), compiled, {params}: APALU / ReLU",
                      e[("compiled", "apalu", params)]["ratio_to_relu"], TARGETS["cnn_compiled_step_vs_relu"])
        if ("eager", "apalu", params) in e:
            out.report("training step", f"CNN step (SGD), eager, {params}: APALU / ReLU",
                       e[("eager", "apalu", params)]["ratio_to_relu"])


def _large(out: _Lines, ops: list[dict]) -> None:
    o = _index(ops, "label", "direction")
    size = _size(ops[0]["elements"])
    group = f"large tensors ({size} elements)"

    def get(label: str, direction: str = "forward+backward") -> dict | None:
        return o.get((label, direction))

    for params in ("scalar", "per-channel"):
        for direction in ("forward", "forward+backward"):
            r = get(f"apalu (lean eager, {params})", direction)
            if r:
                out.judge(group, f"lean eager APALU / GELU, {direction}, {params} (like for like)",
                          r["ratio_to_gelu"], TARGETS["large_vs_gelu"])
    for direction in ("forward", "forward+backward"):
        for label in ("apalu (lean eager, scalar)", "gelu (native)", "copy (preallocated)"):
            r = get(label, direction)
            if r and not (label.startswith("copy") and direction != "forward"):
                what = "copy" if label.startswith("copy") else label
                out.report(group, f"{what}, {direction}: bytes moved per second / copy bandwidth "
                           f"({r['copy_gb_per_s']:.1f} GB/s)", r["fraction_of_bound"],
                           "reported (1 = the physical limit)", unit="")
    gelu_c, relu_c = get("gelu (compiled)"), get("relu (compiled)")
    for params in ("scalar", "per-channel"):
        c = get(f"apalu (compiled, {params})")
        if not c:
            continue
        if gelu_c:
            out.judge(group, f"compiled APALU / compiled GELU, forward+backward, {params}",
                      c["median_ms"] / gelu_c["median_ms"], TARGETS["compiled_vs_gelu"])
        out.judge(group, f"compiled APALU / eager GELU, forward+backward, {params}",
                  c["ratio_to_gelu"], TARGETS["compiled_vs_gelu"])
        if relu_c:
            out.report(group, f"compiled APALU / compiled ReLU, forward+backward, {params}",
                       c["median_ms"] / relu_c["median_ms"])
    for impl in ("lean eager", "compiled"):
        s, p = get(f"apalu ({impl}, scalar)"), get(f"apalu ({impl}, per-channel)")
        if s and p:
            out.judge(group, f"per-channel / scalar APALU, {impl}, forward+backward",
                      p["median_ms"] / s["median_ms"], TARGETS["per_channel_vs_scalar"])
    for params in ("scalar", "per-channel"):
        t = get(f"apalu (triton, {params})")
        if t:
            out.judge(group, f"Triton APALU / GELU, forward+backward, {params}", t["ratio_to_gelu"],
                      TARGETS["gpu_fused_vs_gelu"])
    from .cases import HUGE_PAGE_IMPL

    for direction in ("forward", "forward+backward"):
        r = get(f"apalu ({HUGE_PAGE_IMPL}, scalar)", direction)
        if r:
            out.report(group, f"APALU with the huge-page hint / GELU, {direction}", r["ratio_to_gelu"],
                       HUGE_PAGE_RISK)
    for impl, note in (("reference eager", "plain autograd"), ("ATen eager", "without the C++ kernel"),
                       ("inductor compiled", "without the C++ kernel")):
        r = get(f"apalu ({impl}, scalar)")
        if r:
            out.report(group, f"{impl} APALU / GELU, forward+backward ({note})", r["ratio_to_gelu"])


def _memory(out: _Lines, memory: list[dict]) -> None:
    mem = _index(memory, "activation")
    for label in ("lean eager", "compiled"):
        r = mem.get((f"apalu ({label})",))
        if r:
            out.judge("memory", f"saved for backward per layer, {label} APALU (inputs)",
                      r["saved_inputs_per_layer"], TARGETS["saved_inputs_per_layer"], unit="",
                      slack=SAVED_SLACK)


def judge(results: dict[str, list[dict]], device: str) -> list[dict]:
    """The target lines for one run: ``results`` maps a part of the bench ("ops", "modules",
    "steps", "e2e", "memory") to its rows; parts that did not run give no lines."""
    out = _Lines(device)
    if results.get("modules"):
        _small(out, results["modules"])
    if results.get("steps"):
        _steps(out, results["steps"])
    if results.get("e2e"):
        _cnn(out, results["e2e"])
    if results.get("ops"):
        _large(out, results["ops"])
    if results.get("memory"):
        _memory(out, results["memory"])
    return out.rows
