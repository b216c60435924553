"""Admin pages: imports (to be written)."""
