"""Admin pages: candidates (to be written)."""
