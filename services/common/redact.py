"""Secrets out of what wirewatch writes down: credentials in URLs never reach logs or the topics
other services read (only the poller's own state topic keeps the feed URLs as configured).

A feed may be configured as ``https://user:password@host/feed`` or with a token in its query
(``?api_key=…``); the poller needs those to fetch it, but logs, metrics labels and messages
for other consumers get the URL with them masked.
"""

from __future__ import annotations

import re

MASK = "REDACTED"
# Query parameters that carry credentials by the names APIs commonly give them.
SECRET_PARAMETER = re.compile(
    r"^(?:.*[-_])?(?:token|api[-_]?key|apikey|key|secret|password|passwd|pwd|auth|"
    r"signature|sig|session|sessionid|access[-_]?token|client[-_]?secret)$",
    re.IGNORECASE,
)
# A URL's userinfo, and a secret query parameter, inside free text (log lines, errors).
_USERINFO_IN_TEXT = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@?#\"']+@")
_PARAMETER_IN_TEXT = re.compile(r"(?P<lead>[?&;])(?P<name>[^=&\s\"'#]+)=[^&\s\"'#]*")


def redact_text(text: str) -> str:
    """Every URL credential in ``text`` masked (userinfo, secret query parameters)."""
    text = _USERINFO_IN_TEXT.sub(lambda m: f"{m['scheme']}{MASK}@", text)

    def parameter(match: re.Match[str]) -> str:
        if SECRET_PARAMETER.match(match["name"]):
            return f"{match['lead']}{match['name']}={MASK}"
        return match.group(0)

    return _PARAMETER_IN_TEXT.sub(parameter, text)


def redact_url(url: str) -> str:
    """``url`` without its userinfo and with secret-looking query values masked."""
    return redact_text(url)
