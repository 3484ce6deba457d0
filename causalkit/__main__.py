"""``python -m causalkit``: the Hydra entry point (see :mod:`causalkit.cli`)."""

from causalkit.cli import main

if __name__ == "__main__":
    main()
