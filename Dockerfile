# Minimal runtime image; the deployment issue finishes it (HEALTHCHECK, size, non-root details).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY hotdash_watch ./hotdash_watch
RUN pip install --no-cache-dir . && useradd --create-home watch
USER watch
EXPOSE 9464
ENTRYPOINT ["hotdash-watch"]
CMD ["run", "--config", "/app/config/watch.toml"]
COPY config ./config
