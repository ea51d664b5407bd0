"""Tamper evidence: a hash chain over the event store's notification log, anchored by signed heads kept apart
from the database (`links`: the pure chain and heads; `store`: its tables and head log; `keeper`: the job that
extends and signs it; `audit`: the verification of the whole log or of one course; `cli`: `kact audit`)."""
