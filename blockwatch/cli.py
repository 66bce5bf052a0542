"""The `blockwatch` console script.

Only `--version` for now: the storage commands (`init-db`, `import-groups`, ...) arrive with the
storage layer.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from blockwatch import __version__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="blockwatch", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"blockwatch {__version__}")
    parser.parse_args(argv)
    print(f"blockwatch {__version__}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
