"""``python bench/run.py ARGS`` is ``python -m yolozoo.run ARGS`` (the ``yolozoo`` command): see yolozoo/run.py
or ``--help``."""

import sys

from yolozoo.run import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
