"""``python -m qwen25.train [pretrain options]``: the entry point for ``torchrun``, e.g.

    torchrun --nproc-per-node 2 -m qwen25.train --recipe debug --out runs/debug

It takes the options of ``qwen25 pretrain``."""

from __future__ import annotations

import sys

from ..cli import main

if __name__ == "__main__":
    sys.exit(main(["pretrain", *sys.argv[1:]]))
