"""One small adapter per google-adk release family: what to wrap, nothing else."""
