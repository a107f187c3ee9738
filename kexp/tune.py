"""`python -m kexp.tune`, the name users type: the command lives in kexp/cli/tune.py."""

from kexp.cli.tune import main

if __name__ == "__main__":
    main()
