"""Server-sent events, written and read one way everywhere in BMO.

- :mod:`bmo.streaming.sse_writer`: an event-stream response, frames, one write per burst;
- :mod:`bmo.streaming.disconnect`: the client's leaving, heard from ``connection_lost``;
- :mod:`bmo.streaming.event_feed`: an event source drained in bursts, with keep-alive deadlines;
- :mod:`bmo.streaming.sse_parser`: an incremental, line-bounded parser for reading a stream.
"""
