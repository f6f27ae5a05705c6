"""Console forms for credentials, models and default models; their checks are the services'
(admin_services), so the console and the API refuse the same input with the same words."""

from __future__ import annotations

from django import forms

from tenants.models import Tenant

from . import admin_services
from .models import DefaultModel, Model, ModelKind, ProviderCredential, ProviderKind
from .selectors import secret_shown

SECRET_HELP = "The API key. It is stored encrypted and never shown again."  # noqa: S105


class CredentialForm(forms.ModelForm):
    """A credential; the secret is write-only: an empty field keeps the stored one."""

    base_url = forms.CharField(
        label="Base URL",
        required=False,
        max_length=500,
        help_text=ProviderCredential._meta.get_field("base_url").help_text,
    )
    secret = forms.CharField(
        required=False,
        strip=True,
        max_length=4096,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=SECRET_HELP,
    )
    clear_secret = forms.BooleanField(
        label="Remove the stored secret",
        required=False,
        help_text="For servers that need no key (e.g. a local Ollama).",
    )
    options = forms.JSONField(
        required=False,
        initial=dict,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="A JSON object of non-secret settings: "
        '{"api_version": "2024-10-21"} (Azure), {"organization": "org-…"} (OpenAI), '
        '{"test_model": "llama3.2"} (the model the Test button asks). Leave {} if none.',
    )

    class Meta:
        model = ProviderCredential
        # base_url is declared above; listed here, the model's URLField would be built too.
        fields = ["kind", "name", "options", "enabled", "weight"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        instance = self.instance
        editing = not instance._state.adding
        if editing and instance.secret_encrypted:
            self.fields["secret"].help_text = (
                f"Stored: {secret_shown(instance)}. Leave empty to keep it; type a new one to "
                "replace it."
            )
        elif editing:
            self.fields["secret"].help_text = "None stored. " + SECRET_HELP
        if not editing or not instance.secret_encrypted:
            self.fields.pop("clear_secret", None)

    def clean(self):
        super().clean()
        data = self.cleaned_data
        kind = data.get("kind") or self.instance.kind
        options = data.get("options")
        if options is None and "options" not in self.errors:
            data["options"] = options = {}
        checks = {
            "base_url": admin_services.base_url_problem(kind, data.get("base_url", "")),
            "options": admin_services.options_problem(options) if "options" in data else None,
            "weight": admin_services.weight_problem(data["weight"]) if "weight" in data else None,
        }
        for field, problem in checks.items():
            if problem:
                self.add_error(field, problem)
        name = data.get("name")
        if name and admin_services.credential_name_taken(name, exclude_pk=self.instance.pk):
            self.add_error("name", f"A credential named “{name}” already exists in this tenant.")
        return data


def kind_phrase(kind: str) -> str:
    """“a chat model”, “an embedding model”."""
    label = ModelKind(kind).label.lower()
    return f"{'an' if label[0] in 'aeiou' else 'a'} {label} model"


def model_choice_label(model: Model) -> str:
    scope = "global" if model.is_global else "own"
    return f"{model.get_kind_display()} · {model} ({model.get_provider_display()}, {scope})"


class CatalogModelForm(forms.ModelForm):
    """A tenant's own model, or (platform operators) a global catalog row's prices."""

    tenant: Tenant | None = None  # set by CatalogModelAdmin.get_form
    instance: Model

    # No Meta here: the admin builds it per request, because the foreign-key fields read
    # their choices from tenant-scoped managers, which refuse to run without a tenant.

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        provider = self.fields.get("provider")
        if isinstance(provider, forms.ChoiceField) and not self.editing_global:
            provider.choices = [c for c in ProviderKind.choices if c[0] != ProviderKind.OFFLINE]

    @property
    def editing_global(self) -> bool:
        return not self.instance._state.adding and self.instance.is_global

    def clean(self):
        super().clean()
        data = self.cleaned_data
        instance = self.instance
        provider = data.get("provider", instance.provider)
        problems = admin_services.model_problems(
            provider=provider,
            credential=data.get("credential") if "credential" in self.fields else None,
            context_window=data.get("context_window"),
            input_price=data.get("input_price"),
            output_price=data.get("output_price"),
            currency=data.get("currency", ""),
            is_global=self.editing_global,
        )
        for field, problem in problems.items():
            if field in self.fields and field not in self.errors:
                self.add_error(field, problem)
        if "currency" in data and not problems.get("currency"):
            data["currency"] = data["currency"].upper()
        tenant = self.tenant
        if (
            tenant is not None
            and not self.editing_global
            and data.get("name")
            and admin_services.model_name_taken(
                tenant_id=tenant.pk,
                provider=provider,
                credential=data.get("credential"),
                name=data["name"],
                exclude_pk=instance.pk,
            )
        ):
            self.add_error("name", "You already have a model with this name on this provider.")
        return data


class DefaultModelForm(forms.ModelForm):
    """A default model: of the kind chosen, enabled and visible to the tenant."""

    instance: DefaultModel

    # No Meta, as for CatalogModelForm: the admin builds it per request.

    def clean(self):
        super().clean()
        data = self.cleaned_data
        kind = data.get("kind") or self.instance.kind
        model = data.get("model")
        if kind and model is not None and model.kind != kind:
            self.add_error(
                "model",
                f"{model} is {kind_phrase(model.kind)}; choose {kind_phrase(kind)}.",
            )
        adding = self.instance._state.adding
        if adding and kind and DefaultModel.objects.filter(kind=kind).exists():
            self.add_error(
                "kind",
                f"There is already a default {ModelKind(kind).label.lower()} model: change it "
                "instead.",
            )
        return data


class FallbackFormSet(forms.BaseInlineFormSet):
    """The fallbacks of a default: of its kind, none twice, never the default itself."""

    def clean(self) -> None:
        super().clean()
        default = self.instance
        kind = default.kind
        seen: set[int] = set()
        for form in self.forms:
            if not form.cleaned_data or form.cleaned_data.get("DELETE"):
                continue
            model = form.cleaned_data.get("model")
            if model is None:
                continue
            if kind and model.kind != kind:
                form.add_error(
                    "model",
                    f"{model} is {kind_phrase(model.kind)}; a fallback must be "
                    f"{kind_phrase(kind)}.",
                )
            elif default.model_id == model.pk:
                form.add_error("model", f"{model} is the default itself.")
            elif model.pk in seen:
                form.add_error("model", f"{model} is listed twice.")
            seen.add(model.pk)
