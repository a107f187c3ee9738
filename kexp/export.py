"""`python -m kexp.export`, the name users type: the command lives in kexp/cli/export.py."""

from kexp.cli.export import main

if __name__ == "__main__":
    main()
