"""The plan every tenant without a subscription is on: no limits and no price until an
operator sets them."""

from django.db import migrations


def create_default(apps, schema_editor):
    Plan = apps.get_model("billing", "Plan")
    if not Plan.objects.filter(is_default=True).exists():
        Plan.objects.create(slug="default", name="Default", is_default=True)


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_initial")]

    operations = [migrations.RunPython(create_default, migrations.RunPython.noop)]
