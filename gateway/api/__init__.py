"""The HTTP API: wire types (msgspec) and controllers, one module per endpoint family."""
