"""Compliance archive of case PDFs."""
