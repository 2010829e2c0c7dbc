"""Agent tools: the core set, and the base every plugin tool implements."""
