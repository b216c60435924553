"""Admin users, their roles, passwords, login throttling and API tokens."""
