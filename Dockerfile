# One process per container: the API, Socket.IO and the job runners of one instance.
# Several containers may share one PostgreSQL (WIPSVC_DATABASE_URL) and one Redis (WIPSVC_REDIS_URL).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

COPY pyproject.toml README.md alembic.ini ./
COPY alembic ./alembic
COPY src ./src
# Editable install keeps alembic/ next to the package, where the service finds its migrations.
RUN pip install -e . && useradd --create-home wipsvc && mkdir -p /app/data && chown wipsvc /app/data
USER wipsvc

ENV WIPSVC_HOST=0.0.0.0 WIPSVC_PORT=8000
EXPOSE 8000
# Bound to 0.0.0.0 the service refuses to start until an API key exists:
#   docker run … wipsvc keys create --all
HEALTHCHECK CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz')"
CMD ["wipsvc", "serve"]
