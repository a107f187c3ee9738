"""`python -m kexp.report`, the name users type: the command lives in kexp/cli/report.py."""

from kexp.cli.report import main

if __name__ == "__main__":
    main()
