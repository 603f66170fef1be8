"""Tasks: what a trial trains on and how it is scored (readers, metrics, the generated demo task, tokenised
splits)."""
