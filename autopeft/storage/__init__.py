"""Where a search keeps what it produced: the run directory and the atomic writes every file goes through."""
