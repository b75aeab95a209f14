"""What happens when time passes, decided purely: a due timer fired (reminders, the
escalation ladder, notices, chasers) and the weekly digest's schedule and content."""
