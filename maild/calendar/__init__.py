"""Working time: the Chinese business calendar (statutory holidays and 调休 make-up days)
and working durations ("1 working day", "2 working hours")."""
