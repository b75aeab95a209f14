"""Mail sources: where inbound mail comes from (IMAP or a local Maildir)."""
