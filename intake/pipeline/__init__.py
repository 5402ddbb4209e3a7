"""The pipeline: one item from a source is prepared (parsed and classified, prepare; in a
worker process when there is a backlog: pool, worker), then runs its stages in one
transaction in the daemon's process (runner); the stages read and extend one Case."""
