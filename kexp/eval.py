"""`python -m kexp.eval`, the name users type: the command lives in kexp/cli/eval.py."""

from kexp.cli.eval import main

if __name__ == "__main__":
    main()
