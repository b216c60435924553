"""Outbound webhooks to the ATS: events recorded in the same transaction as what caused them,
then delivered as signed POSTs with retries (the bottom of core: every domain may emit)."""
