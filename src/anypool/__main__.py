"""``python -m anypool``: the command line."""

from anypool._cli import main

if __name__ == "__main__":
    raise SystemExit(main())
