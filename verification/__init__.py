"""Verification: the machinery that proves a conversion against its Paddle original.

- ``seeding`` (with ``seeding_paddle2``, ``seeding_pir``, ``seeding_common``): seeded,
  calibrated weights for real Paddle programs whose trained weights are out of reach, so a
  weightless program can still be run by Paddle and compared;
- ``pdiparams``: writing Paddle's ``.pdiparams`` weight stream (the inverse of the
  converter's reader);
- ``paddle_runner``: runs a Paddle model under Paddle Inference (or in float64) in a process
  of its own;
- ``parity``: the converted model against the Paddle original on real inputs;
- ``suite``: which real models are proven against which real inputs;
- ``shared``: where the shared data (real Paddle models, programs, images) lives.

Used by the tests and by the maintainer scripts of ``tools/``. It depends on ``converter``
and ``ptocr``, never the other way round, and ships in the repository only, not in the
wheel: a user of ptocr needs neither Paddle nor this package.
"""
