"""The engine: the result model, the check registry, the runner and the context a check sees, over any plan."""
