"""Credentials never leave the process: masking of passwords in URLs before text is stored,
exported or printed.

A registry URL such as ``postgresql+psycopg://user:secret@host/db`` reaches commands,
progress lines, error messages and run rows; every such string passes through
`redact` first. Masking works on any text, so a URL inside a longer message (a stored
command line, a driver's error) is caught too.
"""

from __future__ import annotations

import re

MASK = "***"

# scheme://user:password@ — the password runs up to the last '@' before the host part
# (passwords may contain '@' when not percent-encoded; hosts may not).
_URL_PASSWORD = re.compile(
    r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@]*:)(?P<password>[^\s/]*)(?P<tail>@[^\s@/]*)"
)
# libpq keyword form inside driver messages: password=secret
_KEYWORD_PASSWORD = re.compile(r"(?P<head>\bpassword\s*=\s*)(?P<password>'[^']*'|\S+)", re.I)


def redact(text: str) -> str:
    """``text`` with the password of every URL (and every ``password=...``) replaced by ***."""
    text = _URL_PASSWORD.sub(lambda m: f"{m['head']}{MASK}{m['tail']}", text)
    return _KEYWORD_PASSWORD.sub(lambda m: f"{m['head']}{MASK}", text)
