"""Admin pages: templates_editor (to be written)."""
