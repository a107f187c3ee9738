"""`python -m kexp.generate`, the name users type: the command lives in kexp/cli/generate.py."""

from kexp.cli.generate import main

if __name__ == "__main__":
    main()
