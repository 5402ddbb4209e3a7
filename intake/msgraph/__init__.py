"""Microsoft Graph, for tenants where IMAP and SMTP AUTH are turned off: a mailbox (a
user's or a shared one) read with delta queries (intake/sources/graph.py) and mail sent
with sendMail (sender.py), both through the small HTTP client in client.py.

Every call is app-only: an access token for https://graph.microsoft.com/.default from
the app's client credentials (intake/oauth/microsoft.py), with the Mail.ReadWrite and
Mail.Send application permissions, which Exchange can narrow to chosen mailboxes.
"""

from __future__ import annotations

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
GRAPH_API = "https://graph.microsoft.com/v1.0"
