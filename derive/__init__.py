"""softmax-derive, the symbolic side.

Stages, each in its own module, data flowing one way:

definitions -> engine + catalogue (proofs) -> codegen -> verify -> report

``python -m derive all`` runs them in that order.
"""
__version__ = "0.1.0"
