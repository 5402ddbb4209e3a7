"""The pipeline: one item from a source runs its stages in one transaction (runner), in a worker process
when there is a backlog (pool: the daemon's side; worker: the process's own); the stages read and extend one Case."""
