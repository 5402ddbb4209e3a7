"""Operations: the single-daemon guard for SQLite, /healthz and /metrics."""
