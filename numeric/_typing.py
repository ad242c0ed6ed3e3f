"""The type aliases of the public signatures (NumPy's own typing, nothing else)."""
from __future__ import annotations

from typing import Literal, Union

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["ArrayLike", "NDArray", "Axis", "Reduction", "Loss"]

#: the class axis (or axes): an int, a tuple of ints, or None for all
Axis = Union[int, tuple[int, ...], None]
#: how per-sample losses are combined, as PyTorch names it
Reduction = Literal["none", "mean", "sum"]
#: a loss: an array with reduction "none", else a NumPy scalar of the result dtype
Loss = Union[NDArray[np.floating], np.floating]
