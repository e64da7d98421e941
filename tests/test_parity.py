"""The converted models against their Paddle originals, on real inputs (the doc/parity.md rows)."""

import os

import pytest

from converter.parity import EXACT_TOLERANCE, TOLERANCE, check_parity, paddle_available
from converter.parity_suite import SUITE, images_of


@pytest.fixture(scope="module")
def paddle():
    if not paddle_available():
        if os.environ.get("CI"):
            pytest.fail("parity tests must run in CI: paddlepaddle is not installed (pip install -e '.[test]')")
        pytest.skip("paddlepaddle is not installed (pip install -e '.[test]')")


@pytest.mark.parametrize("entry", SUITE, ids=[e.model for e in SUITE])
def test_parity_against_paddle(shared_dir, paddle, entry):
    images = images_of(shared_dir, entry)
    assert images, f"no images for {entry.model}"
    report = check_parity(shared_dir / "paddle_models" / entry.model, images, name=entry.model)
    print(report.summary())
    bad = [c for c in report.cases if not c.agree]
    assert not bad, f"decisions differ from Paddle Inference: {bad}"
    assert report.exact <= EXACT_TOLERANCE, report.summary()
    assert report.max_abs <= TOLERANCE, report.summary()
    assert report.ok
