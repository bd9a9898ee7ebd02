# hotdash-watch runtime image.
#
#   docker build -t hotdash-watch .
#   docker run --rm -p 9464:9464 -v hotdash-data:/data hotdash-watch
#
# Two stages: the build stage makes a virtualenv in /opt/venv (dependencies first, in their own
# cached layer, then the package); the runtime stage copies only that virtualenv onto a fresh
# slim base, so no pip cache, build backend or source tree ends up in the image.

FROM python:3.11-slim-bookworm AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
WORKDIR /src

# Dependencies only: this layer is rebuilt when pyproject.toml changes, not on every code edit.
# The list is read from pyproject.toml itself, so there is no second list to keep in step.
COPY pyproject.toml ./
RUN python -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; open('/tmp/requirements.txt', 'w').write('\n'.join(deps) + '\n')" \
    && pip install --no-cache-dir -r /tmp/requirements.txt

# The package itself; --no-deps: everything it needs is already in the layer above. pip and
# setuptools are not needed at run time (26 MB of the virtualenv): they go.
COPY README.md ./
COPY hotdash_watch ./hotdash_watch
RUN pip install --no-cache-dir --no-deps . \
    && pip uninstall --yes setuptools pip


FROM python:3.11-slim-bookworm

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

# A fixed numeric uid/gid: volume and file ownership do not depend on name resolution.
# /data holds the SQLite store, the journal and the incident artifacts (a Fly volume in
# production, see fly.toml); the process runs there, so the configuration's relative paths
# (feedback/reliability.md, artifacts/reliability) land on the volume too.
RUN groupadd --system --gid 10001 watch \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home \
       --shell /usr/sbin/nologin watch \
    && mkdir -p /data /etc/hotdash-watch \
    && chown 10001:10001 /data

COPY --from=build /opt/venv /opt/venv
# The example configuration (the runbook's two apps, store at /data/hotdash-watch.db). Replace
# it by mounting your own file here, or override single keys with HOTDASH_WATCH_* variables.
COPY config/watch.toml /etc/hotdash-watch/watch.toml

WORKDIR /data
USER 10001:10001
EXPOSE 9464
VOLUME ["/data"]

# /healthz answers 200 while the scheduler ticks (503 when it is stale). slim has no curl, so
# Python asks; urlopen raises on a 503 or a refused connection, which exits non-zero.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('HOTDASH_WATCH_SERVER__PORT', '9464') + '/healthz', timeout=4)"]

# Exec form: hotdash-watch is PID 1 and receives SIGTERM itself, then drains (in-flight probes
# get timers.shutdown_grace_s, the outbox a last delivery pass, the store is closed last).
STOPSIGNAL SIGTERM
ENTRYPOINT ["hotdash-watch"]
CMD ["run", "--config", "/etc/hotdash-watch/watch.toml"]
