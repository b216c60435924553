"""Admin pages: users (to be written)."""
