"""Last of the chain."""
VALUE = 3
