# One process per container: the API, Socket.IO and the job runners of one instance.
# Several containers may share one PostgreSQL (WIPSVC_DATABASE_URL) and one Redis (WIPSVC_REDIS_URL).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY alembic ./alembic
COPY src ./src
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
COPY --from=build /wheels /wheels
COPY constraints.txt /tmp/constraints.txt
# A regular install of the wheel, which carries its migrations; no source tree in the image.
RUN pip install -c /tmp/constraints.txt --find-links /wheels 'wipsvc[postgres,redis]' \
    && rm -rf /wheels /tmp/constraints.txt \
    && useradd --create-home wipsvc && mkdir -p /data && chown wipsvc /data
USER wipsvc
WORKDIR /home/wipsvc

# The SQLite database (the default) lives in the volume: keep it with a named volume, and give
# one-off commands the same one, e.g. `docker run --rm -v wipsvc-data:/data wipsvc wipsvc keys create --all`
# (with PostgreSQL, pass WIPSVC_DATABASE_URL instead).
ENV WIPSVC_DATA_DIR=/data WIPSVC_HOST=0.0.0.0 WIPSVC_PORT=8000
VOLUME ["/data"]
EXPOSE 8000
# Bound to 0.0.0.0 the service refuses to start until an API key exists (see above).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('WIPSVC_PORT', '8000'), timeout=4)"
CMD ["wipsvc", "serve"]
