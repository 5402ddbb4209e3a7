"""Tickets as records and as views: references and status changes, the views of the command
line, corrections, the signed case link, and the weekly report."""
