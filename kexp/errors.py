"""Errors a user can cause. Entry points print them as one line and exit non-zero."""


class KexpError(Exception):
    """A problem with the user's config, data or environment, explained in one line."""

    exit_code = 2


class TrainingFailed(KexpError):
    """The run started but could not finish (non-finite loss, ...); it is marked FAILED."""

    exit_code = 1
