"""The aiohttp host: app factory, auth boundary, error envelope, serving."""
