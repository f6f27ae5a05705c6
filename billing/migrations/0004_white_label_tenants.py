"""Before plans, a flag on the tenant let it hide "Powered by Weft"; plans replaced the flag
(tenants 0006). A tenant whose branding hides it (which that flag alone allowed) keeps doing
so: it moves to a copy of its plan with the remove-powered-by feature, made once per plan."""

import datetime as dt

from django.db import migrations

KEPT_APART = {"id", "slug", "name", "is_default", "created_at", "updated_at"}


def white_label_copy(Plan, plan):
    slug = f"{plan.slug}-white-label"[:50]
    found = Plan.objects.filter(slug=slug).first()
    if found is not None:
        return found
    fields = {
        field.name: getattr(plan, field.name)
        for field in Plan._meta.concrete_fields
        if field.name not in KEPT_APART
    }
    fields["remove_powered_by"] = True
    return Plan.objects.create(slug=slug, name=f"{plan.name} (white label)"[:100], **fields)


def carry_over(apps, schema_editor):
    from billing.quota import first_period

    Branding = apps.get_model("tenants", "Branding")
    Plan = apps.get_model("billing", "Plan")
    Subscription = apps.get_model("billing", "Subscription")
    hiding = set(Branding.objects.filter(show_powered_by=False).values_list("tenant_id", flat=True))
    if not hiding:
        return
    subscribed = Subscription.objects.filter(tenant_id__in=hiding).select_related("plan")
    for subscription in subscribed:
        if not subscription.plan.remove_powered_by:
            subscription.plan = white_label_copy(Plan, subscription.plan)
            subscription.save(update_fields=["plan"])
    default = Plan.objects.filter(is_default=True).first()
    unsubscribed = hiding - {s.tenant_id for s in subscribed}
    if default is None or not unsubscribed:
        return
    plan = default if default.remove_powered_by else white_label_copy(Plan, default)
    first = first_period(plan, dt.datetime.now(dt.UTC))  # as a tenant's first use would make it
    for tenant_id in unsubscribed:
        Subscription.objects.create(tenant_id=tenant_id, plan=plan, **first)


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0003_trial_help"),
        ("tenants", "0006_white_label_is_a_plan_feature"),
    ]

    operations = [migrations.RunPython(carry_over, migrations.RunPython.noop)]
