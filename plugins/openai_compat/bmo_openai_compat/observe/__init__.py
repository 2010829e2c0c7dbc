"""What observes a compat request: the ledger, the request's record and span, outcomes, posture."""
