from django.db import migrations
from pgvector.django import VectorExtension


class Migration(migrations.Migration):
    """pgvector, for the knowledge base's embeddings (created here, at the lowest layer)."""

    dependencies = [("tenants", "0001_initial")]

    operations = [VectorExtension()]
