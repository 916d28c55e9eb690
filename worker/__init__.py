"""The Celery worker: models, the face pipeline and the tasks. Nothing here imports Flask."""
