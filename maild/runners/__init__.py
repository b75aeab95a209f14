"""The moving parts: the intake (mailbox to decisions), the parser pool, the timer sweeper,
the outbox drain and the daemon that schedules them."""
