"""Scale-out: the durable engine's passes as Celery tasks (see :mod:`engine.workers.celery_app`)."""
