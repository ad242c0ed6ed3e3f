"""Code generation: proved array expressions, printed to NumPy.

A :class:`Kernel` is a named function of array expressions over the functions of
:mod:`derive.functions`, each output with its :class:`Claim`. Before anything is printed,
each output is *proved* equal to what its claim states: a derivation whose last step
cites the claim's lemmas and ends in the kernel's own index form
(``functions.to_indexed``), checked by the same engine as any derivation. Only then is it
printed with SymPy's NumPy printer (after common subexpression elimination with
deterministic names) by :func:`render` / :func:`write_module`. The output depends on
nothing but the kernels and the SymPy version: the same inputs give the same bytes. The
built-in kernels are content: :mod:`derive.softmax.kernels`.
"""
from __future__ import annotations

from .buffers import Statement, assign_buffers, is_full, print_full, to_statements
from .claims import Claim, Kernel, kernel_proof, kernel_proofs, moderate_claim
from .module import USER_HEADER, write_module
from .printed import PRINTED_CLASSES, PRINTED_ROWS, PRINTED_TOLERANCE, check_printed, prove_kernels
from .printer import (
    BUFFER_HELPERS,
    MODERATE,
    KernelPrinter,
    index_columns,
    output_shapes,
    print_elementwise_kernel,
    print_kernel,
    print_quiet,
    render,
    scratch_count,
)

__all__ = [
    "BUFFER_HELPERS", "MODERATE", "PRINTED_CLASSES", "PRINTED_ROWS", "PRINTED_TOLERANCE", "USER_HEADER",
    "Claim", "Kernel", "KernelPrinter", "Statement", "assign_buffers", "check_printed", "index_columns",
    "is_full", "kernel_proof", "kernel_proofs", "moderate_claim", "output_shapes", "print_elementwise_kernel",
    "print_full", "print_kernel", "print_quiet", "prove_kernels", "render", "scratch_count", "to_statements",
    "write_module",
]
