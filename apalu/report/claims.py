"""Every claim the book decides, defined once: its text, order, section, notebook and kind.

A notebook records a verdict on a claim by its id (:func:`apalu.report.ledger.record_verdict`);
the ledger page lists the claims no notebook recorded from the same table
(:func:`apalu.report.ledger.with_expected`). The text is what the book shows (the ledger table,
the exp_paper table) and what every record's ``claim`` field holds, so changing one here
changes the committed records at the next ``make record``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["KINDS", "ClaimSpec", "CLAIMS", "claim_spec", "EVIDENCE_TOLERANCE"]

# analytic: a property of the function the paper states, decided by SymPy and checked numerically;
# empirical: a result the paper reports, tested by training at this machine's scale;
# assumption: something the paper assumes (not claims), tested by training;
# open question: the paper says nothing; the book asks.
KINDS = ("analytic", "empirical", "assumption", "open question")


@dataclass(frozen=True)
class ClaimSpec:
    id: str  # stable slug; the ledger anchor is "claim-<id>", the record "<id>.json"
    text: str  # the claim, as the book shows it
    order: int  # position in the ledger table
    section: str  # book page (and anchor) that decides it
    source: str  # notebook that records it
    kind: str  # one of KINDS


def _specs(source: str, kind: str, *rows: tuple[str, int, str, str]) -> list[ClaimSpec]:
    """Claims recorded by one notebook: (id, order, section anchor or "", text) each."""
    page = f"notebooks/{source}"
    return [ClaimSpec(id=i, text=text, order=order, section=page + (f"#{anchor}" if anchor else ""),
                      source=f"{page}.ipynb", kind=kind) for i, order, anchor, text in rows]


_ALL = [
    *_specs("theory_definition", "analytic",
            ("continuity", 1, "theory-c1", "APALU is continuous."),
            ("differentiability", 2, "theory-c1", "APALU is differentiable (smooth).")),
    *_specs("theory_bounds", "analytic",
            ("derivative-lower-bound", 3, "theory-derivative-infimum",
             "The derivative of APALU has a positive lower bound."),
            ("monotonicity", 4, "theory-monotonicity", "APALU is monotonic (increasing)."),
            ("lipschitz", 5, "theory-derivative-infimum",
             "APALU has a bounded derivative (is Lipschitz), so it does not explode gradients by itself.")),
    *_specs("theory_depth_init", "analytic",
            ("vanishing-gradients-analytic", 6, "theory-depth-product",
             "APALU mitigates vanishing gradients (its derivative is bounded away from 0).")),
    *_specs("theory_approximation", "analytic",
            ("universal-approximation", 7, "theory-nonpolynomial", "Networks with APALU are universal approximators.")),
    *_specs("exp_gradient_flow", "empirical",
            ("exp-vanishing-gradients", 100, "",
             "APALU is robust against vanishing gradients (deep networks keep gradient at the input layers).")),
    *_specs("exp_init_sensitivity", "open question",
            ("exp-init-u02", 110, "",
             "(Open question) The paper's init a, b ~ U(0, 2) trains as well and as reliably as other inits.")),
    *_specs("exp_small_data", "open question",
            ("exp-small-data-overfitting", 120, "",
             "(Open question) APALU's extra parameters do not make small-data overfitting worse than "
             "ReLU/PReLU/GELU/ELU.")),
    *_specs("exp_param_dynamics", "assumption",
            ("exp-ab-stay-positive", 130, "", "APALU's trainable a and b stay positive (a, b > 0) when trained.")),
    *_specs("exp_convergence", "empirical",
            ("exp-faster-convergence", 140, "", "APALU converges faster than the fixed activations.")),
    *_specs("exp_paper", "empirical",
            ("exp-image-classification", 150, "",
             "APALU improves image-classification accuracy over ReLU (CIFAR-10: MobileNet +0.37 pp, GoogLeNet +0.04 pp)."),
            ("exp-deep-svdd-auc", 151, "", "With APALU, Deep SVDD's AUC on MNIST improves over ReLU (+0.8 pp)."),
            ("exp-regression-cost", 152, "",
             "APALU gives lower regression cost (MSE) than ReLU and Tanh, in a DNN and an RNN."),
            ("exp-cifar10-mobilenet", 153, "", "CIFAR-10 with a mobilenet-style model: APALU beats ReLU (+0.37 pp)."),
            ("exp-cifar10-inception", 153, "", "CIFAR-10 with a inception-style model: APALU beats ReLU (+0.04 pp)."),
            ("exp-mvtec", 154, "",
             "MVTec AD: APALU improves DifferNet (+1.81 pp) and KD (+1.11 pp) anomaly detection."),
            ("exp-sign-language", 154, "", "Sign language (small set): APALU reaches 100% accuracy.")),
]
CLAIMS: dict[str, ClaimSpec] = {c.id: c for c in _ALL}
assert len(CLAIMS) == len(_ALL), "a claim id is defined twice"
assert all(c.kind in KINDS for c in _ALL)


def claim_spec(claim_id: str) -> ClaimSpec:
    """The registered claim ``claim_id``; an id that is not registered is an error."""
    try:
        return CLAIMS[claim_id]
    except KeyError:
        raise ValueError(f"unknown claim id {claim_id!r}: register it in apalu/report/claims.py "
                         f"(known: {', '.join(CLAIMS)})") from None


# Evidence whose numbers are more sensitive than the reproducibility contract's default
# (apalu.report.reproduce.DEFAULT) states its own tolerance and why, as a notebook cell does.
EVIDENCE_TOLERANCE: dict[str, dict] = {
    "exp-ab-stay-positive": {
        "abs": 0.05, "why": "shares of a few hundred (run, layer, channel) values, which move in steps of 1/n; "
        "0.2761 against 0.2677 with the C++ kernel off"},
    "exp-small-data-overfitting": {
        "abs": 0.002, "why": "the mean of 28 differences of train-val accuracy gaps, each near 0; "
        "-0.0005 against -0.0008 with the C++ kernel off"},
}
