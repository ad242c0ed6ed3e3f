"""The array-level stable forms of the built-in content and its kernels.

Each name is an array expression over :mod:`derive.functions` (``A`` the logits,
``C`` the integer targets, ``Y`` probability targets); a user's kernel builds on them,
e.g. the temperature-scaled loss ``NLL_INDEX.xreplace({A: A / tau})``.
"""
from ..codegen import (  # noqa: F401 - re-exported: the stable forms users build on
    GRAD_INDEX,
    GRAD_SOFT,
    L1P,
    NEG_LOG_SOFTMAX,
    NLL_INDEX,
    NLL_SOFT,
    SOFTMAX,
    TAIL,
    TRUE_CLASS,
    E,
    K,
    M,
    kernels,
)
from ..functions import A, C, Y  # noqa: F401 - re-exported: the array symbols

#: the kernels of ``numeric/_kernels.py``
KERNELS = kernels()
