"""The proof memo shared by processes: authenticated JSON data (an HMAC under the
session's secret), bound to this engine's version (:data:`ENGINE_VERSION`: a hash of
the source of every module of :mod:`derive.engine`, :mod:`derive.symbols` and
:mod:`derive.notation`), and
SymPy's srepr read back without running it (:func:`read_srepr`)."""
from __future__ import annotations

import ast
import hashlib
import hmac
import json
import os
from collections.abc import Sequence

import mpmath
import sympy as sp

from .. import notation, symbols

#: environment variable naming a directory where accepted links (and SymPy's values of
#: sums) are remembered for every process that shares it and :data:`MEMO_KEY_VARIABLE`
MEMO_VARIABLE = "DERIVE_PROOF_MEMO"
#: environment variable holding the memo's secret (hex, at least 16 bytes): an entry is
#: read only if its HMAC under this secret is right; without it the memo is not used
MEMO_KEY_VARIABLE = "DERIVE_PROOF_MEMO_KEY"


def engine_sources() -> list[str]:
    """The files the engine version covers: every module of :mod:`derive.engine`, sorted
    by name, :mod:`derive.symbols` (whose instances and samplers the engine draws) and
    :mod:`derive.notation` (where it reads the index ranges, samplers and instance class)."""
    folder = os.path.dirname(os.path.abspath(__file__))
    modules = sorted(name for name in os.listdir(folder) if name.endswith(".py"))
    return [os.path.join(folder, name) for name in modules] + [symbols.__file__, notation.__file__]


def _engine_version(sources: Sequence[str] | None = None) -> str:
    """A hash of the engine's own source (:func:`engine_sources`, or ``sources``: each
    file's name and text) and of the SymPy and mpmath versions: a memo entry of another
    version is never read, so an edit to any module of the engine forgets the memo."""
    digest = hashlib.sha256(f"{sp.__version__} {mpmath.__version__}".encode())
    for path in engine_sources() if sources is None else sources:
        with open(path, "rb") as source:
            text = source.read()
        name = os.path.basename(path).encode()
        # lengths first: a line moved from one module to the next is another version
        digest.update(b"%d:%s%d:" % (len(name), name, len(text)) + text)
    return digest.hexdigest()[:32]


ENGINE_VERSION = _engine_version()


def _memo_secret() -> bytes | None:
    folder, secret = os.environ.get(MEMO_VARIABLE), os.environ.get(MEMO_KEY_VARIABLE, "")
    if not folder:
        return None
    try:
        key = bytes.fromhex(secret)
    except ValueError:
        return None
    return key if len(key) >= 16 else None


def _memo_digest(kind: str, key) -> str:
    return hashlib.sha256(repr((ENGINE_VERSION, kind, key)).encode()).hexdigest()


def _memo_mac(secret: bytes, kind: str, digest: str, value) -> str:
    text = json.dumps([ENGINE_VERSION, kind, digest, value], sort_keys=True)
    return hmac.new(secret, text.encode(), hashlib.sha256).hexdigest()


def memo_read(kind: str, key, valid=lambda value: True):
    """The value remembered for ``key`` in the session's memo directory, or None: an
    entry is data (JSON, never run), and is read only if it names this engine version
    and its HMAC under the session's secret is right, and ``valid(value)``."""
    secret = _memo_secret()
    if secret is None:
        return None
    digest = _memo_digest(kind, key)
    path = os.path.join(os.environ[MEMO_VARIABLE], f"{kind}-{digest}")
    try:
        with open(path, encoding="utf-8") as memo:
            entry = json.load(memo)
    except (OSError, ValueError):
        return None
    if not (isinstance(entry, dict) and entry.get("version") == ENGINE_VERSION
            and entry.get("kind") == kind and entry.get("key") == digest
            and isinstance(entry.get("mac"), str) and "value" in entry):
        return None
    if not hmac.compare_digest(entry["mac"], _memo_mac(secret, kind, digest, entry["value"])):
        return None
    return entry["value"] if valid(entry["value"]) else None


def memo_write(kind: str, key, value) -> None:
    """Remember ``value`` (JSON data) for ``key`` in the session's memo, if there is one."""
    secret = _memo_secret()
    if secret is None:
        return
    digest = _memo_digest(kind, key)
    entry = {"version": ENGINE_VERSION, "kind": kind, "key": digest, "value": value,
             "mac": _memo_mac(secret, kind, digest, value)}
    path = os.path.join(os.environ[MEMO_VARIABLE], f"{kind}-{digest}")
    spare = f"{path}.{os.getpid()}"
    try:
        with open(spare, "w", encoding="utf-8") as memo:
            json.dump(entry, memo)
        os.replace(spare, path)  # whole or absent for a reader in another process
    except OSError:
        return


#: the bare names SymPy's srepr writes for its singletons
_SREPR_CONSTANTS = ("pi", "E", "I", "oo", "zoo", "nan", "true", "false", "EulerGamma", "S")
#: the classes whose first argument may be a string (a name or a decimal)
_SREPR_NAMED = ("Symbol", "IndexedBase", "Float", "Function", "Idx")


def read_srepr(text: str) -> sp.Basic:
    """SymPy's srepr read back without running it: only calls of SymPy's own classes
    with number, bool and (for a symbol's name or a decimal) string literals.

    Examples
    --------
    >>> import sympy as sp
    >>> from derive.engine import read_srepr
    >>> T = sp.Symbol("T", integer=True, positive=True)
    >>> read_srepr(sp.srepr(T ** 2 / 2 + T / 2)) == T ** 2 / 2 + T / 2
    True
    >>> read_srepr("eval('1')")
    Traceback (most recent call last):
    ...
    ValueError: not a SymPy srepr: eval
    """
    return _read_node(ast.parse(text, mode="eval").body)


def _read_node(node):
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, bool)):
        return node.value
    if (isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub)
            and isinstance(node.operand, ast.Constant) and isinstance(node.operand.value, (int, float))):
        return -node.operand.value
    if isinstance(node, ast.Tuple):
        return tuple(_read_node(item) for item in node.elts)
    if isinstance(node, ast.Name) and node.id in _SREPR_CONSTANTS:
        return getattr(sp, node.id) if node.id != "S" else sp.S
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        name = node.func.id
        cls = getattr(sp, name, None)
        if not (isinstance(cls, type) and issubclass(cls, sp.Basic)):
            raise ValueError(f"not a SymPy srepr: {name}")
        args = []
        for n, arg in enumerate(node.args):
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                if n != 0 or name not in _SREPR_NAMED:
                    raise ValueError(f"not a SymPy srepr: a string in {name}")
                args.append(arg.value)
            else:
                args.append(_read_node(arg))
        keywords = {}
        for kw in node.keywords:
            if not (isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, (bool, int))):
                raise ValueError(f"not a SymPy srepr: the keyword {kw.arg} of {name}")
            keywords[kw.arg] = kw.value.value
        return cls(*args, **keywords)
    raise ValueError(f"not a SymPy srepr: {ast.dump(node)[:60]}")


def _remembered(kind: str, key, memory: dict, valid):
    """What was remembered for ``key`` in this process or, authenticated, in the
    session's memo; None for a key that is None (something unknowable decided it)."""
    if key is None:
        return None
    if key in memory:
        return memory[key]
    value = memo_read(kind, key, valid)
    if value is not None:
        memory[key] = tuple(value) if isinstance(value, list) else value
    return memory.get(key)


def _remember(kind: str, key, memory: dict, value) -> None:
    if key is None:
        return
    memory[key] = value
    memo_write(kind, key, list(value) if isinstance(value, tuple) else value)
