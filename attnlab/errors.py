"""The one exception type users see.

Anything a user can cause (a bad file, a bad config value, a prompt that is too long, an unknown
character, a corrupt checkpoint) raises :class:`AttnlabError` with a message that says what to do.
The command line prints the message, without a traceback, and exits with status 2.
"""


class AttnlabError(Exception):
    """A problem with the user's input, files or settings (not a bug in attnlab)."""


def require_positive_ints(values: dict[str, object], owner: str = "") -> None:
    """Raise :class:`AttnlabError` naming the first of ``values`` ({name: value}) that is not an int >= 1.

    ``owner`` (say ``"GPTConfig"``) prefixes the name in the message: ``GPTConfig.n_layer must be ...``.
    A bool is refused even though Python counts it as an int.
    """
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            where = f"{owner}.{name}" if owner else name
            raise AttnlabError(f"{where} must be a positive integer, got {value!r}")


def require_positive_fields(config: object, names: tuple[str, ...], owner: str | None = None) -> None:
    """:func:`require_positive_ints` for the fields ``names`` of ``config`` (owner: its class name)."""
    require_positive_ints({name: getattr(config, name) for name in names},
                          type(config).__name__ if owner is None else owner)
