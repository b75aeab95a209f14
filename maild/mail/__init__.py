"""Mail as people write it: raw bytes to a frozen ParsedMail (charsets, MIME, attachments),
and what the text says (quoted history, forms, staff commands, a party's intents)."""
