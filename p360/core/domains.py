"""The one rule for what a company domain is, shared by audience records and Bombora intent data.

Both sides must normalise a domain identically, or the builder's Bombora join silently misses companies.
Host extraction, step by step (the vectorised passes run the same steps): drop a scheme or `//`, the path/query/
fragment, userinfo or an email's local part (up to the last `@`), `www.`, a port, trailing dots.
"""

from __future__ import annotations

DOMAIN_MAX = 253
# Letters of internationalised names: non-ASCII except the whitespace and invisible separators.
_NON_ASCII_LETTER = (
    r"\u00c0-\u167f\u1681-\u1fff\u200c-\u2027\u202a-\u202e\u2030-\u205e\u2060-\u2fff\u3001-\ufefe\uff00-\U0010ffff"
)
_LABEL_CHAR = rf"a-z0-9_{_NON_ASCII_LETTER}"
DOMAIN_RE_TEXT = (
    rf"^(?:[{_LABEL_CHAR}](?:[{_LABEL_CHAR}\-]*[{_LABEL_CHAR}])?\.)+"
    rf"[a-z{_NON_ASCII_LETTER}](?:[{_LABEL_CHAR}\-]*[{_LABEL_CHAR}])?$"
)
SCHEME_RE_TEXT = r"^(?:[a-z][a-z0-9+.\-]*://|//)"
PATH_RE_TEXT = r"[/?#][\s\S]*$"
USERINFO_RE_TEXT = r"^[\s\S]*@"
PORT_RE_TEXT = r":[0-9]*$"
