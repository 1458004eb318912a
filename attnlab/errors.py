"""The one exception type users see.

Anything a user can cause (a bad file, a bad config value, a prompt that is too long, an unknown
character, a corrupt checkpoint) raises :class:`AttnlabError` with a message that says what to do.
The command line prints the message, without a traceback, and exits with status 2.
"""


class AttnlabError(Exception):
    """A problem with the user's input, files or settings (not a bug in attnlab)."""
