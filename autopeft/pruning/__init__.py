"""Physical pruning for Light-PEFT: the shapes a family of models can lose, the masks that score them, the plan
that removes heads and neurons, and the artifact that ships it beside an adapter."""
