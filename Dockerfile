FROM python:3.12-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 MAILHUB_VAR_DIR=/var/lib/mailhub
WORKDIR /app
COPY requirements.lock ./
RUN pip install -r requirements.lock
COPY . .
RUN DJANGO_SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput -v 0
EXPOSE 8000 2525
CMD ["gunicorn", "mailhub.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3"]
