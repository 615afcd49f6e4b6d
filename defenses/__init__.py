"""Built-in defense plugins, one module per defense, registered through entry points."""
