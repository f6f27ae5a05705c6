"""Keep the global model catalog present after every migrate."""

from django.db.models.signals import post_migrate


def _sync_catalog(sender, **kwargs) -> None:
    if sender.name != "providers":
        return
    from .catalog import catalog_sync

    catalog_sync()


post_migrate.connect(_sync_catalog, dispatch_uid="weft_providers_catalog")
