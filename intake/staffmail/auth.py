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


def authenticated(headers: list[str], authserv_id: str, from_addr: str) -> tuple[bool, str]:
    """(passed, why) from the Authentication-Results header values of one message."""
    from_domain = _domain_of(from_addr)
    ours = [h for h in headers if h.split(";", 1)[0].strip().split()[0:1] == [authserv_id]] if authserv_id else []
    if not ours:
        return False, f"no Authentication-Results from {authserv_id}"
    for header in ours:
        for method, result, rest in _RESULT.findall(header.split(";", 1)[1] if ";" in header else ""):
            if result.lower() != "pass":
                continue
            method = method.lower()
            props = {k.lower(): _domain_of(v) for k, v in _PROP.findall(rest)}
            if method == "dmarc" and props.get("header.from", from_domain) == from_domain:
                return True, "dmarc=pass"
            if method == "dkim" and "header.d" in props and _aligned(props["header.d"], from_domain):
                return True, f"dkim=pass header.d={props['header.d']}"
            if method == "spf" and "smtp.mailfrom" in props and _aligned(props["smtp.mailfrom"], from_domain):
                return True, f"spf=pass smtp.mailfrom={props['smtp.mailfrom']}"
    return False, f"{authserv_id} did not authenticate {from_domain} (no dmarc, aligned dkim or spf pass)"
