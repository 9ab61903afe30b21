"""Calls a function once while the module is being imported: `-- COMMAND` must count it."""


def called_at_import():
    return 42


called_at_import()
