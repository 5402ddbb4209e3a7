"""Was the sender's From address authenticated by our own mail server? (RFC 8601)

Optional extra check on staff replies (staff_mail.trusted_authserv_id): the receiving
server — ours, named by its authserv-id — records SPF/DKIM/DMARC results in an
Authentication-Results header. Only headers with that id count: anyone can write such
a header into a forged mail, but not one our server vouches for (it removes or
overrides foreign ones with its own id). A pass means: dmarc=pass, or dkim=pass for the
From domain (header.d), or spf=pass for it (smtp.mailfrom).
"""

from __future__ import annotations

import re

_RESULT = re.compile(r"\b(spf|dkim|dmarc)\s*=\s*(\w+)([^;]*)", re.IGNORECASE)
_PROP = re.compile(r"\b(header\.d|header\.from|smtp\.mailfrom|header\.i)\s*=\s*\"?([^\s;\"]+)", re.IGNORECASE)


def _domain_of(value: str) -> str:
    return value.rsplit("@", 1)[-1].strip().lower().rstrip(".")


def _aligned(domain: str, from_domain: str) -> bool:
    return from_domain == domain or from_domain.endswith("." + domain)


def _authserv_id(header: str) -> str:
    words = header.split(";", 1)[0].split()
    return words[0].lower() if words else ""


def authenticated(headers: list[str], authserv_id: str, from_addr: str) -> tuple[bool, str]:
    """(passed, why) from the Authentication-Results header values of one message, topmost first.

    Only the topmost header with our authserv-id counts: our server adds its own above
    whatever the mail arrived with, so one further down (with our id or not) was
    written by the sender. dmarc=pass counts only with a header.from naming the From's
    domain: a pass for some other domain says nothing about this From."""
    from_domain = _domain_of(from_addr)
    wanted = authserv_id.lower()
    ours = next((h for h in headers if wanted and _authserv_id(h) == wanted), None)
    if ours is None:
        return False, f"no Authentication-Results from {authserv_id}"
    for method, result, rest in _RESULT.findall(ours.split(";", 1)[1] if ";" in ours else ""):
        if result.lower() != "pass":
            continue
        method = method.lower()
        props = {k.lower(): _domain_of(v) for k, v in _PROP.findall(rest)}
        if method == "dmarc" and props.get("header.from") == from_domain:
            return True, "dmarc=pass"
        if method == "dkim" and "header.d" in props and _aligned(props["header.d"], from_domain):
            return True, f"dkim=pass header.d={props['header.d']}"
        if method == "spf" and "smtp.mailfrom" in props and _aligned(props["smtp.mailfrom"], from_domain):
            return True, f"spf=pass smtp.mailfrom={props['smtp.mailfrom']}"
    return False, f"{authserv_id} did not authenticate {from_domain} (no dmarc with header.from, aligned dkim or spf pass)"
