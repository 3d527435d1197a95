"""Serving: between the HTTP edge and the engine. A task's worker prepares a request's jobs, the admission check
decides whether the queue can take them in time, the batch queue runs them with other requests' jobs on the
model thread. Knows nothing of HTTP or Ray, and nothing of tensors."""
