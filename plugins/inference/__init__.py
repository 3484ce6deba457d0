"""Built-in inference plugins."""
