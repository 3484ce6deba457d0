"""``python -m causalkit``: the Hydra entry point (see :mod:`causalkit.cli`)."""

import sys


def _run() -> None:
    """Import the command line and run it; Ctrl-C while it is still importing is one line too."""
    try:
        from causalkit.cli import main
    except KeyboardInterrupt:
        print("causalkit: interrupted while starting; nothing was run", file=sys.stderr)
        sys.exit(130)
    main()


if __name__ == "__main__":
    _run()
