"""Message sources: IMAP mailboxes, Maildir drop folders, the form spool."""
