"""What a Message-ID is (RFC 5322 §3.6.4), for every header that carries one.

``msg-id = "<" id-left "@" id-right ">"``: printable US-ASCII without spaces, one ``@``. An id
that is not of this form comes from a broken or hostile sender; it is never stored and never
written into a mail of ours (a non-ASCII id cannot be sent without SMTPUTF8, an over-long one
cannot fit a 998-octet line). The length cap is ours: real ids are under 100 characters.
"""

import re

MAX_LENGTH = 250
# id-left and id-right: any printable ASCII but the delimiters (dot-atom-text, no-fold-literal
# and the obsolete forms that real mailers still write), never whitespace or control characters.
_MSG_ID = re.compile(r"<[!-;=?A-~]+@[!-;=?A-~]+>")
_CANDIDATE = re.compile(r"<[^<>]*>|[^\s<>]+")


def msg_id_valid(value: str) -> bool:
    """True when ``value`` is exactly one well-formed msg-id we accept."""
    return len(value) <= MAX_LENGTH and _MSG_ID.fullmatch(value) is not None


def msg_ids(value: str) -> list[str]:
    """The well-formed ``<id>`` tokens of a Message-ID, In-Reply-To or References value, in order.

    Anything else (words, ids with spaces, control or non-ASCII characters, over-long ids) is
    dropped; the ids around it are kept, so threading still finds the thread.
    """
    return [t for t in _CANDIDATE.findall(value or "") if msg_id_valid(t)]
