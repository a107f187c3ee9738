"""`python -m kexp.translate`, the name users type: the command lives in kexp/cli/translate.py."""

from kexp.cli.translate import main

if __name__ == "__main__":
    main()
