"""The edges: mail sources (IMAP, Maildir), mail senders (SMTP, Maildir) and the letter
templates (Jinja2) with MIME composition."""
