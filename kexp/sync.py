"""`python -m kexp.sync`, the name users type: the command lives in kexp/cli/sync.py."""

from kexp.cli.sync import main

if __name__ == "__main__":
    main()
