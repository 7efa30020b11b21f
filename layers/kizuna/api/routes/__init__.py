"""JSON route families, one ``Router`` per module."""
