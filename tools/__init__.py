"""Maintainer scripts: the parity report, the zoo build, seeding by hand, benchmarks and the
pipeline reference. Each runs from the repository root as ``python -m tools.<name>``
(``--help`` lists its flags).

They build on ``verification`` (parity checks, seeded weights), ``converter`` and ``ptocr``;
like ``verification`` they ship in the repository only, not in the wheel.

PaddleOCR 2.x has a top-level package of the same name (``from tools.infer import ...``):
a process that imports paddleocr binds the name to PaddleOCR's first
(``tools.make_pipeline_reference.bind_paddleocr_tools``).
"""
