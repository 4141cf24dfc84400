"""Credentials out of text that is printed or recorded: ``postgresql://user:pw@host/db`` -> ``postgresql://user:***@host/db``."""

from __future__ import annotations

import re

# scheme://user:PASSWORD@ -- the password is everything between the user's colon and the @
_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@]*:)[^\s@]*(?=@)")


def redact(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@host`` URL in it replaced by ``***``."""
    return _PASSWORD.sub(lambda m: f"{m['head']}***", str(text))
