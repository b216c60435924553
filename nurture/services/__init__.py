"""The business of nurture, as plain functions that need neither Flask views nor Redis."""
