"""The HTTP surface: the edge every request passes, the error envelope, the routes and the explorer page."""
