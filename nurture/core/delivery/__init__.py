"""Getting mail out exactly once: due sends to message rows, claim, send-time checks, SMTP,
DKIM, rate limits, the circuit breaker, and proofs (test sends)."""
