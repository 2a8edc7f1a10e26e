"""``python -m hardmine``: the ``hardmine`` command (``report``, ``validate``) without the console script."""

from __future__ import annotations

import sys

from hardmine.cli import main

if __name__ == "__main__":
    sys.exit(main())
