"""APALU for PyTorch, and the analysis behind the apalu-book.

>>> import torch, apalu
>>> act = apalu.APALU()                       # a, b ~ U(0, 2), kept positive
>>> y = act(torch.randn(8, 16))
>>> layer = apalu.make_activation("apalu", num_parameters=16)
"""

from . import functional
from ._version import __version__
from .functional import apalu as apalu_fn
from .init import APALUInit, parse_init
from .module import APALU
from .optim import param_groups
from .registry import ACTIVATIONS, check_activation, make_activation, replace_activations
from .gain import init_gain

__all__ = [
    "APALU",
    "APALUInit",
    "ACTIVATIONS",
    "apalu_fn",
    "check_activation",
    "functional",
    "init_gain",
    "make_activation",
    "param_groups",
    "parse_init",
    "replace_activations",
]
