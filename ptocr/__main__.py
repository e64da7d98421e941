"""``python -m ptocr``: the ``ptocr`` command, so ``torchrun -m ptocr train -c CONFIG.yml`` starts
several training processes."""

from ptocr.cli import main

main(prog_name="ptocr")
