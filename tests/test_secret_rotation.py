from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection

from endpoints.models import Endpoint


def raw_key(endpoint_id: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT api_key FROM endpoints_endpoint WHERE id = %s", [endpoint_id])
        return cursor.fetchone()[0]


def test_rotating_the_encryption_key_keeps_every_secret_readable(settings, make_endpoint):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.ENCRYPTION_KEYS = [old]
    endpoint = make_endpoint("Rotating", api_key="sk-rotate-me-0123456789")
    before = raw_key(endpoint.pk)

    settings.ENCRYPTION_KEYS = [new, old]
    call_command("rotate_secrets", verbosity=0)
    assert raw_key(endpoint.pk) != before

    settings.ENCRYPTION_KEYS = [new]  # the old key is gone
    assert Endpoint.objects.get(pk=endpoint.pk).api_key == "sk-rotate-me-0123456789"
