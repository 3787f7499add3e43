"""Markers for strings that are translated later, at display time."""


def N_(message):
    """gettext_noop: marks `message` for extraction (babel keyword N_) and
    returns it unchanged; it is translated where it is shown (enums.label)."""
    return message
