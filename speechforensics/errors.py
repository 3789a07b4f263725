"""The one exception type for problems a user can fix."""


class SpeechForensicsError(Exception):
    """A problem with the user's input, with a one-line message naming the input and the fix."""
