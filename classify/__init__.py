"""Keyword classification, routing and assignment of cases."""
