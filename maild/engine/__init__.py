"""The pure decision: process definitions, the generic workflow with its commands, effects
as data, and applying a decision to a case (new case state, timer changes, letters)."""
