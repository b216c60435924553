"""Admin pages: campaigns (to be written)."""
