"""A module tests/scripts/watch.py imports only after attach (with the argument "later")."""


def later_mod():
    y = 2
    return y
