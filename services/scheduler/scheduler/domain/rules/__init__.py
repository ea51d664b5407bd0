"""The rules a course command is checked against, one module per invariant family; each returns violations."""
