"""``python -m fastnn`` and the ``fastnn`` console script: see ``fastnn._app.cli``."""
import sys


def main(argv=None) -> int:
    """Run the command line; returns the exit status (0 on success)."""
    from ._app.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
