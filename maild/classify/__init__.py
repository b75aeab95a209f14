"""Who sent a mail and where it belongs: the directory, and the ordered table of named rules
(robots, threading, tags, routing) whose every hit ``maild explain`` shows."""
