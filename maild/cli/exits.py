"""The exit statuses of ``maild`` (docs/operations/exit-codes.md), after sysexits.h where
one fits, so that a supervisor can act on them: systemd does not restart on EX_CONFIG."""

EXIT_OK = 0
EXIT_ERROR = 1  # the command failed (what and why on stderr)
EXIT_USAGE = 2  # bad arguments (argparse)
EXIT_UNAVAILABLE = 69  # EX_UNAVAILABLE: the mailbox or the database did not answer (--once)
EXIT_CONFIG = 78  # EX_CONFIG: the configuration (or the database's schema) must be fixed
EXIT_INTERRUPTED = 130  # 128 + SIGINT: Ctrl-C
