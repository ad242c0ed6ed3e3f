"""The engine's settings: how many instances, at which sizes and precision, a step is
checked on. The modules read them as ``settings.NAME`` when they run, so a change here
(a test's monkeypatch of ``derive.engine.settings``) is seen everywhere at once, and
:func:`derive.engine.driver._numeric_settings` puts them in every remembered key."""
from __future__ import annotations

import mpmath

#: the class counts every non-concrete step is checked on, from ``min_classes`` up
#: (see :func:`~derive.engine.class_counts` for the counts added per derivation)
CLASS_COUNTS = (1, 2, 3, 5, 8)
#: the random class count of a derivation is drawn up to at least this
LARGEST_RANDOM_T = 12
#: random instances per class count
SAMPLES_PER_T = 2
#: working precision of the numeric check, in decimal digits
DIGITS = 40
#: two sides agree numerically when they differ by less than this, relative
TOLERANCE = mpmath.mpf(10) ** (-30)

#: seed of the random instances (step n of derivation d uses DEFAULT_SEED + crc32(d.key) + n)
DEFAULT_SEED = 2024
#: the wide class counts: one T drawn from each range (past the regular counts), one
#: instance each, with N and the content's other sizes (a batch B) drawn from the
#: range of WIDE_SIZES at the same place: in the tens at the first, 1..3 at the second
#: (the cost of a sum over B x T x N stays that of the first)
WIDE_CLASSES = ((13, 17), (24, 30))
WIDE_SIZES = ((10, 16), (1, 3))
#: instances per wide class count
WIDE_SAMPLES = 1
#: an instance whose evaluation takes longer than this (seconds) is undefined
INSTANCE_SECONDS = 20.0
#: the most digits an evaluation that cancels is repeated at
MAX_DIGITS = 2000

#: precisions (bits) a closed number is enclosed at, in turn, until its question is decided
CLOSED_PRECISIONS = (128, 256, 512, 1024, 2048, 4096, 8192)
#: |x| above which e^x is not evaluated (its digits would not fit in memory)
LARGEST_EXPONENT = 10 ** 7
