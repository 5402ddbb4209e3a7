"""Bytes to a parsed message: MIME, charsets, HTML as text, quoted history, loop signs, form submissions.

Pure functions of their input: no database, no network, no clock but the one passed in.
Everything here may run in a worker process before the item takes its write turn."""
