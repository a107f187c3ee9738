"""`python -m kexp`, the name users type: the command lives in kexp/cli/train.py."""

from kexp.cli.train import main

if __name__ == "__main__":
    main()
