import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "leadmarket.settings")

app = Celery("leadmarket")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
