"""Console forms of apps: create, the settings page (every part of Dify's `model_config` as
real fields for chat, agent-chat and completion apps; the features of chatflow and workflow
apps), the input form editor, import, publish and compare.

A settings form starts from the stored JSON and changes only the keys it shows, so that the
parts of a Dify export the page does not show survive a save unchanged; the result is checked
by apps.config before the service stores it."""

from __future__ import annotations

import copy
import json
from typing import Any

from django import forms
from django.db.models import Q

from knowledge.models import Dataset
from providers.models import Model, ModelKind, ProviderCredential, ProviderKind
from providers.selectors import default_model
from tenants.exceptions import InvalidInput
from workflows.services.dsl_io import provider_kind
from workflows.tools import registry as tool_registry

from ..config import INPUT_TYPES, AppConfig, Features, parse_config, parse_features
from ..models import App

FILE_TYPES = [
    ("image", "Images"),
    ("document", "Documents"),
    ("audio", "Audio"),
    ("video", "Video"),
    ("custom", "Other extensions (listed below)"),
]
UPLOAD_METHODS = [("local_file", "Upload from the device"), ("remote_url", "Link (URL)")]
INPUT_TYPE_LABELS = {
    "text-input": "Short text",
    "paragraph": "Paragraph",
    "select": "Select",
    "number": "Number",
    "file": "File",
    "file-list": "Files",
    "checkbox": "Checkbox",
}


def _lines(text: str) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def _words(text: str) -> list[str]:
    return [word.strip().lstrip(".").lower() for word in (text or "").replace(",", " ").split()]


class AppCreateForm(forms.ModelForm):
    """Mode, name, description and icon of a new app."""

    class Meta:
        model = App
        fields = ["mode", "name", "description", "icon", "icon_background"]
        help_texts = {
            "mode": "Chat, agent and text-generator apps are set up on their settings page; "
            "chatflow and workflow apps get a starter workflow to edit. The mode stays.",
            "icon": "An emoji.",
            "icon_background": "A colour, such as #FFEAD5.",
        }

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if App.objects.filter(name=name).exclude(pk=self.instance.pk).exists():
            raise forms.ValidationError(f"An app called “{name}” already exists.")
        return name


class InputVariableForm(forms.Form):
    """One variable of an app's input form."""

    type = forms.ChoiceField(
        choices=[(kind, INPUT_TYPE_LABELS.get(kind, kind)) for kind in INPUT_TYPES],
        initial="text-input",
    )
    variable = forms.CharField(max_length=100)
    label = forms.CharField(max_length=255, required=False)
    required = forms.BooleanField(required=False)
    max_length = forms.IntegerField(required=False, min_value=1, max_value=100_000)
    options = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 24}),
        help_text="Select only: one option per line.",
    )

    def clean_variable(self) -> str:
        value = self.cleaned_data["variable"].strip()
        if not value.replace("_", "a").isalnum() or value[0].isdigit():
            raise forms.ValidationError("Letters, digits and _, not starting with a digit.")
        return value

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("type") == "select" and not _lines(data.get("options", "")):
            self.add_error("options", "A select needs at least one option.")
        return data


class BaseInputFormSet(forms.BaseFormSet):
    def clean(self) -> None:
        if any(self.errors):
            return
        seen: set[str] = set()
        for form in self.forms:
            if not form.cleaned_data or form.cleaned_data.get("DELETE"):
                continue
            name = form.cleaned_data["variable"]
            if name in seen:
                raise forms.ValidationError(f"The variable “{name}” appears twice.")
            seen.add(name)


InputFormSet = forms.formset_factory(
    InputVariableForm, formset=BaseInputFormSet, extra=2, can_delete=True
)


def input_rows(config: AppConfig) -> list[dict[str, Any]]:
    """The input form as the editor's initial rows."""
    rows = []
    for kind, field in config.input_fields():
        rows.append(
            {
                "type": kind,
                "variable": field.variable,
                "label": field.label,
                "required": field.required,
                "max_length": field.max_length,
                "options": "\n".join(field.options),
            }
        )
    return rows


def callable_models() -> list[tuple[str, str, str]]:
    """(kind, name, label) of the chat models the tenant can call: the built-in ones, its
    own served by an enabled credential, and catalog models of a provider it has an enabled
    credential for (two queries)."""
    kinds = set(ProviderCredential.objects.filter(enabled=True).values_list("kind", flat=True))
    models = (
        Model.objects.filter(kind=ModelKind.CHAT, enabled=True)
        .filter(
            Q(provider=ProviderKind.OFFLINE)
            | Q(credential__enabled=True)
            | Q(credential__isnull=True, provider__in=kinds)
        )
        .order_by("provider", "name")
        .values_list("provider", "name", "label")
    )
    return list(models)


def model_choices(config: AppConfig | None) -> tuple[list[tuple[str, str]], str]:
    """The chat models the tenant can call as choices (`kind/name`), and the one the config
    names (kept as a choice of its own when the tenant cannot call it, so that a save does
    not change it behind the builder's back; the tenant's default when it names none)."""
    choices = [
        (f"{provider}/{name}", f"{label or name} ({provider})")
        for provider, name, label in callable_models()
    ]
    if config is None or not config.model.name:
        default = default_model(ModelKind.CHAT)  # what a blank model runs on
        return choices, f"{default.provider}/{default.name}"
    kind = provider_kind(config.model.provider) or config.model.provider
    current = f"{kind}/{config.model.name}"
    if current not in {value for value, _ in choices}:
        choices.append(
            (
                current,
                f"{config.model.name} ({config.model.provider}, not set up here: the default "
                "chat model answers)",
            )
        )
    return choices, current


def tool_choices(config: AppConfig) -> list[tuple[str, str]]:
    """Weft's built-in tools, and any tool the config names that Weft does not have."""
    choices = [
        (f"{tool.provider_id}/{tool.name}", f"{tool.provider.label}: {tool.label}")
        for tool in tool_registry.all()
    ]
    known = {value for value, _ in choices}
    for tool in config.agent_mode.tools:
        value = f"{tool.provider_id}/{tool.tool_name}"
        if value not in known:
            choices.append((value, f"{value} (not available in Weft)"))
            known.add(value)
    return choices


# The settings page's sections, and the fields each mode leaves out.
DETAILS = ["name", "description", "icon", "icon_background"]
MODEL = ["model", "temperature", "max_tokens", "pre_prompt"]
CONVERSATION = [
    "opening_statement",
    "suggested_questions",
    "suggested_questions_after_answer",
    "memory_enabled",
    "memory_size",
]
KNOWLEDGE = [
    "datasets",
    "retrieval_model",
    "top_k",
    "score_threshold_enabled",
    "score_threshold",
    "reranking_enable",
    "dataset_query_variable",
    "show_sources",
]
MODERATION = [
    "moderation_enabled",
    "moderation_keywords",
    "moderation_inputs",
    "moderation_inputs_response",
    "moderation_outputs",
    "moderation_outputs_response",
]
UPLOAD = ["file_upload_enabled", "file_types", "file_extensions", "file_methods", "file_limit"]
AGENT = ["agent_strategy", "agent_max_iteration", "agent_tools", "agent_tool_settings"]
ACCESS = ["enable_api", "enable_site", "max_active_requests", "api_rpm", "end_user_rpm"]
MODEL_FIELDS = [*DETAILS, *ACCESS]
_NO_CONVERSATION = {
    "opening_statement",
    "suggested_questions",
    "suggested_questions_after_answer",
    "memory_enabled",
    "memory_size",
}
LEFT_OUT: dict[str, set[str]] = {
    App.Mode.CHAT: {"dataset_query_variable", *AGENT},
    App.Mode.AGENT_CHAT: {"dataset_query_variable"},
    App.Mode.COMPLETION: {*_NO_CONVERSATION, *AGENT},
    App.Mode.CHATFLOW: {"memory_enabled", "memory_size"},
    App.Mode.WORKFLOW: {*_NO_CONVERSATION, "show_sources", *MODERATION},
}


def settings_fieldsets(mode: str) -> list[tuple[str | None, dict[str, Any]]]:
    """The sections of the settings page of an app of this mode."""
    config_sections: list[tuple[str | None, list[str]]] = [
        ("Model and prompt", MODEL),
        ("Conversation", CONVERSATION),
        ("Knowledge", KNOWLEDGE),
        ("Agent", AGENT),
    ]
    workflow_sections: list[tuple[str | None, list[str]]] = [
        ("Conversation", [*CONVERSATION, "show_sources"]),
    ]
    sections: list[tuple[str | None, list[str]]] = [
        (None, DETAILS),
        *(workflow_sections if mode in App.WORKFLOW_MODES else config_sections),
        ("Moderation", MODERATION),
        ("File upload", UPLOAD),
        ("API, portal and limits", ACCESS),
    ]
    left_out = LEFT_OUT[mode]
    fieldsets = []
    for title, names in sections:
        shown = [name for name in names if name not in left_out]
        if shown:
            fieldsets.append((title, {"fields": shown}))
    return fieldsets


class SettingsForm(forms.ModelForm):
    """What every app's settings page has: details, switches, limits, and the features
    (opener, suggestions, sources, moderation, file upload) where the mode has them."""

    opening_statement = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="What the app says first in a new conversation.",
    )
    suggested_questions = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Questions offered with the opening statement, one per line.",
    )
    suggested_questions_after_answer = forms.BooleanField(
        required=False,
        label="Suggest follow-up questions",
        help_text="After each answer, three questions the user may ask next.",
    )
    show_sources = forms.BooleanField(
        required=False,
        label="Show retrieval sources",
        help_text="Answers list the knowledge chunks they drew on.",
    )
    moderation_enabled = forms.BooleanField(required=False, label="Keyword moderation")
    moderation_keywords = forms.CharField(
        required=False,
        label="Keywords",
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One word or phrase per line.",
    )
    moderation_inputs = forms.BooleanField(
        required=False, label="Check the input", help_text="A query with a keyword is refused."
    )
    moderation_inputs_response = forms.CharField(
        required=False, label="Answer to a refused input", max_length=2000
    )
    moderation_outputs = forms.BooleanField(
        required=False,
        label="Check the output",
        help_text="An answer with a keyword is replaced.",
    )
    moderation_outputs_response = forms.CharField(
        required=False, label="Replacement answer", max_length=2000
    )
    file_upload_enabled = forms.BooleanField(required=False, label="Users may send files")
    file_types = forms.MultipleChoiceField(
        required=False,
        label="File types",
        choices=FILE_TYPES,
        widget=forms.CheckboxSelectMultiple,
    )
    file_extensions = forms.CharField(
        required=False,
        label="Other extensions",
        help_text="For “other”: extensions separated by spaces or commas (pdf, .md …).",
    )
    file_methods = forms.MultipleChoiceField(
        required=False,
        label="How files are sent",
        choices=UPLOAD_METHODS,
        widget=forms.CheckboxSelectMultiple,
    )
    file_limit = forms.IntegerField(
        label="Files per message", min_value=0, max_value=50, required=False
    )

    class Meta:
        model = App
        fields = [
            "name",
            "description",
            "icon",
            "icon_background",
            "enable_api",
            "enable_site",
            "max_active_requests",
            "api_rpm",
            "end_user_rpm",
        ]
        labels = {
            "enable_api": "Service API on",
            "enable_site": "Portal on",
            "max_active_requests": "Runs at once",
            "api_rpm": "Requests per minute per key",
            "end_user_rpm": "Requests per minute per end user",
        }

    # The stored settings this form starts from, and their parsed view (set by subclasses).
    stored: dict[str, Any]
    parsed: Features

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in LEFT_OUT[self.instance.mode]:
            self.fields.pop(name, None)
        self.settings_error = ""
        self._load()
        for name, value in self._initial().items():
            if name in self.fields:
                self.fields[name].initial = value
        moderation = self.parsed.sensitive_word_avoidance
        self.other_moderation = (
            moderation.type if moderation.enabled and moderation.type != "keywords" else ""
        )
        if self.other_moderation and "moderation_enabled" in self.fields:
            self.fields["moderation_enabled"].help_text = (
                f"This app uses Dify's “{self.other_moderation}” moderation, which Weft does not "
                "run; it is kept as it is unless you tick this, which replaces it with keywords."
            )

    def _load(self) -> None:  # pragma: no cover - each subclass loads its own
        raise NotImplementedError

    def _initial(self) -> dict[str, Any]:
        features = self.parsed
        moderation = features.sensitive_word_avoidance
        inputs_on, inputs_response = moderation.side("inputs_config")
        outputs_on, outputs_response = moderation.side("outputs_config")
        upload = features.file_upload
        return {
            "opening_statement": features.opening_statement,
            "suggested_questions": "\n".join(features.suggested_questions),
            "suggested_questions_after_answer": features.suggested_questions_after_answer.enabled,
            "show_sources": features.retriever_resource.enabled,
            "moderation_enabled": moderation.enabled and moderation.type == "keywords",
            "moderation_keywords": "\n".join(moderation.keywords()),
            "moderation_inputs": inputs_on,
            "moderation_inputs_response": inputs_response,
            "moderation_outputs": outputs_on,
            "moderation_outputs_response": outputs_response,
            "file_upload_enabled": upload.enabled,
            "file_types": upload.allowed_file_types,
            "file_extensions": " ".join(upload.allowed_file_extensions),
            "file_methods": upload.allowed_file_upload_methods,
            "file_limit": upload.number_limits,
        }

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if App.objects.filter(name=name).exclude(pk=self.instance.pk).exists():
            raise forms.ValidationError(f"An app called “{name}” already exists.")
        return name

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("moderation_enabled"):
            if not _lines(data.get("moderation_keywords", "")):
                self.add_error("moderation_keywords", "List at least one keyword.")
            if not (data.get("moderation_inputs") or data.get("moderation_outputs")):
                self.add_error(
                    "moderation_inputs", "Check the input, the output, or both (or turn it off)."
                )
        for side in ("inputs", "outputs"):
            if data.get(f"moderation_{side}") and not data.get(f"moderation_{side}_response"):
                self.add_error(f"moderation_{side}_response", "Say what the user is told.")
        return data

    def _apply_features(self, target: dict[str, Any], data: dict[str, Any]) -> None:
        """The features of the form written over `target` (Dify's keys)."""
        if "opening_statement" in self.fields:
            target["opening_statement"] = data.get("opening_statement", "")
            target["suggested_questions"] = _lines(data.get("suggested_questions", ""))
        for key, field in (
            ("suggested_questions_after_answer", "suggested_questions_after_answer"),
            ("retriever_resource", "show_sources"),
        ):
            if field in self.fields:
                target[key] = {**(target.get(key) or {}), "enabled": bool(data.get(field))}
        if "moderation_enabled" in self.fields:
            target["sensitive_word_avoidance"] = self._moderation(
                dict(target.get("sensitive_word_avoidance") or {}), data
            )
        limit = data.get("file_limit")
        target["file_upload"] = {
            **(target.get("file_upload") or {}),
            "enabled": bool(data.get("file_upload_enabled")),
            "allowed_file_types": list(data.get("file_types") or []),
            "allowed_file_extensions": [
                f".{word}" for word in _words(data.get("file_extensions", ""))
            ],
            "allowed_file_upload_methods": list(data.get("file_methods") or []),
            "number_limits": limit if limit is not None else 3,
        }

    def _moderation(self, stored: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        """Dify's `sensitive_word_avoidance` with the form's keywords (off: only `enabled`
        changes, so that another kind of moderation a Dify export set survives)."""
        if not data.get("moderation_enabled"):
            return stored if self.other_moderation else {**stored, "enabled": False}
        return {
            **stored,
            "enabled": True,
            "type": "keywords",
            "config": {
                "keywords": "\n".join(_lines(data.get("moderation_keywords", ""))),
                "inputs_config": {
                    "enabled": bool(data.get("moderation_inputs")),
                    "preset_response": data.get("moderation_inputs_response", ""),
                },
                "outputs_config": {
                    "enabled": bool(data.get("moderation_outputs")),
                    "preset_response": data.get("moderation_outputs_response", ""),
                },
            },
        }

    def service_arguments(self) -> dict[str, Any]:
        """The app's own fields as keyword arguments of apps.services.app_update."""
        data = self.cleaned_data
        return {name: data[name] for name in MODEL_FIELDS if name in data and name in self.fields}


class ConfigForm(SettingsForm):
    """The settings of a chat, agent-chat or completion app: its `model_config` as fields,
    and the input form as rows (`variables`, a formset)."""

    model = forms.ChoiceField(label="Model", help_text="One of the tenant's chat models.")
    temperature = forms.FloatField(
        required=False,
        min_value=0,
        max_value=2,
        help_text="Empty: the model's default. Lower is more focused, higher more varied.",
    )
    max_tokens = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=1_000_000,
        label="Max answer tokens",
        help_text="Empty: the model's default.",
    )
    pre_prompt = forms.CharField(
        required=False,
        label="Prompt",
        strip=False,
        widget=forms.Textarea(attrs={"rows": 8, "class": "weft-prompt"}),
        help_text="The instructions the model gets first. {{variable}} puts in an input.",
    )
    datasets = forms.MultipleChoiceField(
        required=False,
        label="Knowledge",
        widget=forms.CheckboxSelectMultiple,
        help_text="The datasets each query searches.",
    )
    retrieval_model = forms.ChoiceField(
        label="Retrieval",
        choices=[
            ("multiple", "Search every dataset, then merge"),
            ("single", "Pick the one dataset that fits"),
        ],
    )
    top_k = forms.IntegerField(label="Top K", min_value=1, max_value=50)
    score_threshold_enabled = forms.BooleanField(required=False, label="Use a score threshold")
    score_threshold = forms.FloatField(
        required=False, min_value=0, max_value=1, help_text="Chunks scoring less are left out."
    )
    reranking_enable = forms.BooleanField(
        required=False, label="Rerank", help_text="Reorder merged results with the rerank model."
    )
    dataset_query_variable = forms.ChoiceField(
        required=False,
        label="Query variable",
        help_text="Which input is the search query (text generator apps).",
    )
    memory_enabled = forms.BooleanField(
        required=False, label="Memory", help_text="Send the last turns with each query."
    )
    memory_size = forms.IntegerField(label="Turns remembered", min_value=1, max_value=200)
    agent_strategy = forms.ChoiceField(
        label="Strategy",
        choices=[("function_call", "Function calling"), ("react", "ReAct")],
    )
    agent_max_iteration = forms.IntegerField(label="Most tool rounds", min_value=1, max_value=99)
    agent_tools = forms.MultipleChoiceField(
        required=False,
        label="Tools",
        widget=forms.CheckboxSelectMultiple,
        help_text="Built-in tools the agent may call.",
    )
    agent_tool_settings = forms.CharField(
        required=False,
        label="Tool settings",
        widget=forms.Textarea(attrs={"rows": 4, "class": "weft-json-input"}),
        help_text='A JSON object: for each tool ("provider/tool") its fixed parameters, such '
        'as {"time/current_time": {"timezone": "UTC"}}.',
    )

    def _load(self) -> None:
        self.stored = copy.deepcopy(self.instance.config or {})
        try:
            self.stored_config = parse_config(self.stored)
        except InvalidInput as exc:
            self.settings_error = (
                f"The stored settings do not read ({exc.message}); saving replaces them with "
                "what this page shows."
            )
            self.stored, self.stored_config = {}, AppConfig()
        self.parsed = config = self.stored_config
        choices, current = model_choices(config)
        self._offer("model", choices)
        self.fields["model"].initial = current
        ids = config.dataset_configs.dataset_ids()
        datasets = [(str(pk), name) for pk, name in Dataset.objects.values_list("pk", "name")]
        known = {value for value, _ in datasets}
        datasets += [(i, f"(missing dataset {i})") for i in ids if i not in known]
        self._offer("datasets", datasets)
        names = [
            (field.variable, field.label or field.variable) for _, field in config.input_fields()
        ]
        self._offer("dataset_query_variable", [("", "—"), *names])
        if "agent_tools" in self.fields:
            self._offer("agent_tools", tool_choices(config))
        rows = input_rows(config)
        self.variables = InputFormSet(
            self.data if self.is_bound else None, initial=rows, prefix="variables"
        )

    def _offer(self, name: str, choices: list[tuple[str, str]]) -> None:
        """Set the choices of a choice field the mode has."""
        field = self.fields.get(name)
        if isinstance(field, forms.ChoiceField):
            field.choices = choices

    def _initial(self) -> dict[str, Any]:
        config = self.stored_config
        params = config.model.completion_params
        retrieval = config.dataset_configs
        agent = config.agent_mode
        return {
            **super()._initial(),
            "temperature": params.get("temperature"),
            "max_tokens": params.get("max_tokens"),
            "pre_prompt": config.pre_prompt,
            "datasets": retrieval.dataset_ids(),
            "retrieval_model": retrieval.retrieval_model,
            "top_k": retrieval.top_k,
            "score_threshold_enabled": retrieval.score_threshold_enabled,
            "score_threshold": retrieval.score_threshold,
            "reranking_enable": retrieval.reranking_enable,
            "dataset_query_variable": config.dataset_query_variable,
            "memory_enabled": config.memory.window.enabled,
            "memory_size": config.memory.window.size,
            "agent_strategy": agent.strategy
            if agent.strategy in ("function_call", "react")
            else "function_call",
            "agent_max_iteration": agent.max_iteration,
            "agent_tools": [f"{t.provider_id}/{t.tool_name}" for t in agent.tools if t.enabled],
            "agent_tool_settings": json.dumps(
                {
                    f"{t.provider_id}/{t.tool_name}": t.tool_parameters
                    for t in agent.tools
                    if t.tool_parameters
                },
                indent=2,
                ensure_ascii=False,
            )
            if any(t.tool_parameters for t in agent.tools)
            else "",
        }

    def clean_agent_tool_settings(self) -> dict[str, Any]:
        raw = self.cleaned_data.get("agent_tool_settings") or ""
        if not raw.strip():
            return {}
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(
                f"Malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
            ) from None
        if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
            raise forms.ValidationError('An object of objects: {"provider/tool": {…}}.')
        return value

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("score_threshold_enabled") and data.get("score_threshold") is None:
            self.add_error("score_threshold", "Give the threshold, or turn it off.")
        if not self.variables.is_valid():
            raise forms.ValidationError("The input form has mistakes: see its rows below.")
        if not self.errors:
            try:
                self.config = parse_config(self.build_config(data))
            except InvalidInput as exc:
                raise forms.ValidationError(exc.message) from None
        return data

    def _variables(self) -> list[dict[str, Any]]:
        """The input form from the rows, keeping what the editor does not show of each
        variable (hints, file settings …)."""
        before = {
            field.variable: field.model_dump(exclude_unset=True)
            for _, field in self.stored_config.input_fields()
        }
        items = []
        for row in self.variables.cleaned_data:
            if not row or row.get("DELETE"):
                continue
            name = row["variable"]
            item = {
                **before.get(name, {}),
                "variable": name,
                "label": row.get("label") or name,
                "required": bool(row.get("required")),
            }
            if row.get("max_length"):
                item["max_length"] = row["max_length"]
            else:
                item.pop("max_length", None)
            options = _lines(row.get("options", ""))
            if row["type"] == "select":
                item["options"] = options
            else:
                item.pop("options", None)
            items.append({row["type"]: item})
        return items

    def build_config(self, data: dict[str, Any]) -> dict[str, Any]:
        """The stored config with the form's values written over it."""
        config = copy.deepcopy(self.stored)
        self._apply_features(config, data)
        model = dict(config.get("model") or {})
        kind, _, name = str(data.get("model") or "").partition("/")
        stored_kind = provider_kind(str(model.get("provider") or ""))
        if not (stored_kind == kind and model.get("name") == name):
            model["provider"], model["name"] = kind, name
        model.setdefault("mode", "chat")
        params = dict(model.get("completion_params") or {})
        for key in ("temperature", "max_tokens"):
            if data.get(key) is None:
                params.pop(key, None)
            else:
                params[key] = data[key]
        model["completion_params"] = params
        config["model"] = model
        config["pre_prompt"] = data.get("pre_prompt", "")
        config["user_input_form"] = self._variables()
        retrieval = dict(config.get("dataset_configs") or {})
        retrieval.update(
            retrieval_model=data.get("retrieval_model") or "multiple",
            top_k=data.get("top_k") or 4,
            score_threshold_enabled=bool(data.get("score_threshold_enabled")),
            score_threshold=data.get("score_threshold"),
            reranking_enable=bool(data.get("reranking_enable")),
            datasets={
                "datasets": [
                    {"dataset": {"enabled": True, "id": dataset_id}}
                    for dataset_id in data.get("datasets") or []
                ]
            },
        )
        config["dataset_configs"] = retrieval
        if "dataset_query_variable" in self.fields:
            config["dataset_query_variable"] = data.get("dataset_query_variable") or ""
        if "memory_enabled" in self.fields:
            config["memory"] = {
                **(config.get("memory") or {}),
                "window": {
                    "enabled": bool(data.get("memory_enabled")),
                    "size": data["memory_size"],
                },
            }
        if "agent_tools" in self.fields:
            config["agent_mode"] = self._agent(config.get("agent_mode") or {}, data)
        return config

    def _agent(self, stored: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        settings = data.get("agent_tool_settings") or {}
        before = {
            f"{t.get('provider_id', '')}/{t.get('tool_name', '')}": t
            for t in stored.get("tools") or []
            if isinstance(t, dict)
        }
        tools = []
        for value in data.get("agent_tools") or []:
            provider_id, _, tool_name = value.partition("/")
            tool = {
                "provider_type": "builtin",
                **before.get(value, {}),
                "provider_id": provider_id,
                "tool_name": tool_name,
                "enabled": True,
            }
            tool["tool_parameters"] = settings.get(value, tool.get("tool_parameters") or {})
            tools.append(tool)
        return {
            **stored,
            "enabled": True,
            "strategy": data.get("agent_strategy") or "function_call",
            "max_iteration": data.get("agent_max_iteration") or 5,
            "tools": tools,
        }


class FeaturesForm(SettingsForm):
    """The settings of a chatflow or workflow app: its workflow's features (the graph is
    edited on the workflow's own page)."""

    def _load(self) -> None:
        workflow = self.instance.workflow
        self.stored = copy.deepcopy((workflow.features if workflow is not None else None) or {})
        try:
            self.parsed = parse_features(self.stored)
        except InvalidInput as exc:
            self.settings_error = (
                f"The stored features do not read ({exc.message}); saving replaces them with "
                "what this page shows."
            )
            self.stored, self.parsed = {}, Features()

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if not self.errors:
            features = copy.deepcopy(self.stored)
            self._apply_features(features, data)
            try:
                self.features = parse_features(features)
            except InvalidInput as exc:
                raise forms.ValidationError(exc.message) from None
        return data


class KeyForm(forms.Form):
    name = forms.CharField(
        required=False, max_length=100, help_text="Who or what uses it, to tell keys apart."
    )
