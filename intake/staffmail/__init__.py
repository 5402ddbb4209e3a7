"""Staff work their tickets by email: notifications with a signed Reply-To, relayed
replies with commands, SLA timers, follow-ups and the satisfaction survey."""
