"""The one exception type users see.

Anything that is the user's fault (bad file, bad protocol, broken submission) raises
`MsabenchError` with a single line that names what is wrong and where. The CLI prints
that line and exits non-zero; anything else is a bug and keeps its traceback.
"""


class MsabenchError(Exception):
    """A user-facing error whose message is one line: what is wrong, and where."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))
