"""The REST API (Django REST framework): the user's own account and interviews, and
staff-only listings. Mounted under ``api/`` by ``django_biginterview.urls``."""
