"""Mail out, in the order a mail travels: templates (render) -> compose (bytes) -> queue (outbox row
in the item's transaction) -> mailer (claims and sends) -> transport (SMTP or a local Maildir)."""
