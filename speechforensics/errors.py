"""The one exception type for problems a user can fix, and the one way a batch reports a file it
could not judge (one line on stderr; the run goes on with the next file)."""

import sys
import traceback


class SpeechForensicsError(Exception):
    """A problem with the user's input, with a one-line message naming the input and the fix."""


def describe(err: BaseException, path=None) -> str:
    """One line for a failed file: a SpeechForensicsError's own message; anything unexpected (a
    library tripping over an odd file) named with its type and the file."""
    if isinstance(err, SpeechForensicsError):
        return str(err)
    text = " ".join(str(err).split()) or "no message"
    where = f"{path}: " if path is not None else ""
    return (
        f"{where}unexpected {type(err).__name__} ({text}); rerun with --debug for the "
        "traceback and please report it"
    )


def report_skip(message: str, err: BaseException | None = None, debug: bool = False) -> None:
    """Print `message` as a batch's one line for a file it skips; with `debug`, the traceback of
    `err` first."""
    if debug and err is not None:
        traceback.print_exception(err, file=sys.stderr)
    print(f"speechforensics: error: {message}", file=sys.stderr, flush=True)
