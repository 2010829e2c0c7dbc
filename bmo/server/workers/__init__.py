"""``bmo serve --workers N``: a supervisor process and N worker processes serving one port.

The supervisor binds the listening socket once and hands it to every worker it starts;
each worker is a full server (its own event loop, store connections and records) over the
shared data dir or PostgreSQL store.
"""
