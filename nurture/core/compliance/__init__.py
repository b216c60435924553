"""What the law and the candidate ask for: suppressions, sender identity, preferences, erasure."""
