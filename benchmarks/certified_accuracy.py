"""Certified accuracy on the lossless CIFAR-10 test images: ``dsmooth bench certify`` (see
``service/evaluation.py``), kept here beside the other benchmarks.

    .venv/bin/python -m benchmarks.certified_accuracy --sigma 0.25 --images 100 --n 1000
"""

from service.cli import main

if __name__ == "__main__":
    import sys

    main(["bench", "certify", *sys.argv[1:]])
