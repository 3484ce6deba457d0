"""Built-in data-generating processes."""
