"""The simulated Fly's HTTP routes, one module per API: ``machines.py`` (the Machines API),
``releases.py`` (GraphQL releases), ``telemetry.py`` (logs and metrics) and ``public.py`` (each
app's public URL, through the proxy); ``common.py`` holds what they share. ``app.py`` mounts
them behind its middleware."""
