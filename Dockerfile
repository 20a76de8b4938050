# One image for the web server, the Celery worker, Celery beat and the LMTP
# listener (docker-compose.yml runs it with different commands).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=servicedesk.settings.local

WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
# Static files are collected into the image; WhiteNoise serves them. The
# project's bytecode is compiled here, as pip compiles the packages': with
# PYTHONDONTWRITEBYTECODE every process (a mail pipe: every message) would
# compile it again at start-up.
RUN SECRET_KEY=collectstatic-only-not-used-at-run-time DJANGO_SETTINGS_MODULE=servicedesk.settings.production \
        python manage.py collectstatic --noinput --verbosity 0 \
    && python -m compileall -q servicedesk channels_app reports \
    && useradd --system --uid 1000 --home-dir /app servicedesk \
    && mkdir -p /app/var \
    && chown -R servicedesk /app/var

USER servicedesk
EXPOSE 8000
CMD ["python", "-m", "servicedesk.serve", "--host", "0.0.0.0", "--port", "8000", "--proxy-headers"]
