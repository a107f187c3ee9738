"""`python -m kexp.stylize`, the name users type: the command lives in kexp/cli/stylize.py."""

from kexp.cli.stylize import main

if __name__ == "__main__":
    main()
