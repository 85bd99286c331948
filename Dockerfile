# Two images from one file. The default (last) stage, "app", is the product: the API, and the
# sync and prune jobs of docker-compose.yml. "fake-target" is the offline stand-in for the target
# (docker compose --profile offline); the app image never contains it.

FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN useradd --create-home --uid 10001 app
WORKDIR /app

# The fake target needs the standard library only.
FROM base AS fake-target
COPY fake_target/ fake_target/
USER app
EXPOSE 3000
CMD ["python", "-m", "fake_target", "--host", "0.0.0.0", "--port", "3000"]

FROM base AS app
COPY requirements.txt .
RUN pip install -r requirements.txt
# The product only, listed one by one: tools (fake_target/, benchmarks/) stay out.
COPY manage.py ./
COPY news_project/ news_project/
COPY accounts/ accounts/
COPY news/ news/
COPY sync/ sync/
# Admin and Swagger UI assets, served by WhiteNoise from /app/staticfiles.
RUN DJANGO_SECRET_KEY=build-only python manage.py collectstatic --noinput
USER app
EXPOSE 8000
# granian, 2 worker processes of 4 threads (for 2 CPUs): news_project/serving.py says why.
CMD ["python", "manage.py", "serve"]
