"""Console forms of workflows: the draft editor (Dify's DSL as YAML, or JSON), import,
publish, compare, and the forms built at run time from a start node's variables and from a
paused run's human-input form."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from django import forms

from tenants.exceptions import InvalidInput

from .. import services
from ..dsl import MAX_DSL_BYTES, StartData, WorkflowSpec, dump_dsl
from ..dsl.nodes_data import StartVariable
from ..models import Workflow, WorkflowVersion

DRAFT = "draft"
CONFLICT = (
    "Someone else saved this workflow after you opened it, so your changes were not saved "
    "(they are kept below). Copy them, open the workflow again to see the other changes, "
    "and apply yours on top."
)


def draft_text(workflow: Workflow) -> str:
    """The draft as the editor shows it: Dify's DSL in YAML. Secrets are written as their
    mask, which the draft service reads back as "keep the stored value"."""
    spec = services.spec_of(workflow, secrets="masked")
    app = {"name": workflow.name, "mode": str(workflow.mode), "description": workflow.description}
    return dump_dsl(spec, app=app, include_secrets=True)


def read_draft(text: str) -> WorkflowSpec:
    """The spec in editor text: a Dify DSL document (YAML or JSON), or the JSON of a spec
    (`{"graph": …}`). InvalidInput says what is wrong, with the line where there is one."""
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidInput(
                f"malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
            ) from None
        if isinstance(data, dict) and "workflow" not in data:
            return services.parse_spec(data)
    return services.read_dsl(text).workflow


class WorkflowForm(forms.ModelForm):
    """Name, description, mode (fixed once created) and the draft as text."""

    draft = forms.CharField(
        label="Draft",
        required=False,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 28, "class": "weft-dsl", "spellcheck": "false"}),
        help_text=(
            "Dify's workflow DSL in YAML (or JSON, or the JSON of the spec). The name, mode "
            "and description in the `app` header are ignored: the fields above set them. "
            "Secrets stay as they are when sent back masked."
        ),
    )
    checksum = forms.CharField(required=False, widget=forms.HiddenInput)

    class Meta:
        model = Workflow
        fields = ["name", "description", "mode"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # A new workflow has its UUID already: whether it is saved is what tells.
        self.editing = not self.instance._state.adding
        if self.editing:
            self.fields["draft"].required = True
            self.fields["draft"].initial = draft_text(self.instance)
            self.fields["checksum"].initial = self.instance.draft_checksum

    def clean_name(self) -> str:
        # The service refuses a taken name too, but only here can the typed draft be kept.
        name = self.cleaned_data["name"].strip()
        if Workflow.objects.filter(name=name).exclude(pk=self.instance.pk).exists():
            raise forms.ValidationError(f"A workflow called “{name}” already exists.")
        return name

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        text = data.get("draft") or ""
        if text.strip():
            try:
                data["spec"] = read_draft(text)
            except InvalidInput as exc:
                self.add_error("draft", exc.message)
        # An early look, so that the typed draft is kept; the service checks again under a
        # row lock when it saves.
        if self.editing and data.get("checksum") != self.instance.draft_checksum:
            raise forms.ValidationError(CONFLICT, code="conflict")
        return data


class PublishForm(forms.Form):
    note = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
        help_text="What changed, for whoever rolls back later.",
    )


def source_choices(owner: Any) -> list[tuple[str, str]]:
    """The draft and every version of a workflow (or an app), newest first, as choices."""
    versions = owner.versions.order_by("-number").values_list("number", "note")
    return [(DRAFT, "Draft")] + [
        (str(number), f"Version {number}" + (f": {note[:40]}" if note else ""))
        for number, note in versions
    ]


class CompareForm(forms.Form):
    """Two of the draft and the versions."""

    def __init__(self, *args: Any, choices: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["old"] = forms.ChoiceField(label="From", choices=choices)
        self.fields["new"] = forms.ChoiceField(label="To", choices=choices)


class ImportForm(forms.Form):
    """A Dify export, uploaded or pasted; the new workflow's or app's name (default: the
    file's)."""

    file = forms.FileField(required=False, help_text="A .yml exported from Dify or Weft.")
    text = forms.CharField(
        label="or paste it",
        required=False,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 16, "class": "weft-dsl", "spellcheck": "false"}),
    )
    name = forms.CharField(
        required=False, max_length=255, help_text="Empty: the app name in the file."
    )

    def __init__(self, *args: Any, replacing: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if replacing:
            del self.fields["name"]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        upload, text = data.get("file"), data.get("text") or ""
        if upload is not None and text.strip():
            raise forms.ValidationError("Upload a file or paste the DSL, not both.")
        if upload is None and not text.strip():
            raise forms.ValidationError("Upload a file or paste the DSL.")
        if upload is not None:
            if upload.size > MAX_DSL_BYTES:
                raise forms.ValidationError(
                    f"The file is {upload.size // 1024} KB; at most "
                    f"{MAX_DSL_BYTES // (1024 * 1024)} MB are accepted."
                )
            data["content"] = upload.read()
        else:
            data["content"] = text
        return data


def start_variables(source: Workflow | WorkflowVersion) -> list[StartVariable]:
    """The inputs a run of the draft or version asks for: its top-level start node's."""
    for node in services.spec_of(source, secrets="blank").graph.nodes:
        if isinstance(node.data, StartData) and not node.parentId:
            return list(node.data.variables)
    return []


# Where form content places an input: {{#$outputs.<name>#}}.
_OUTPUT_MARKER = re.compile(r"\{\{#\$outputs\.([A-Za-z0-9_]+)#\}\}")
# A service message about one input starts with its name: "inputs.<name>…".
_INPUT_MESSAGE = re.compile(r"^inputs\.(?P<name>[^\s:]+)")


class RunForm(forms.Form):
    """One field per start variable; file inputs are left out (`skipped`). Values go to the
    run service as typed, and it checks them (its messages land on their fields)."""

    def __init__(self, *args: Any, variables: Iterable[StartVariable], **kwargs: Any) -> None:
        kwargs["prefix"] = "inputs"
        super().__init__(*args, **kwargs)
        self.skipped: list[StartVariable] = []
        for variable in variables:
            field = _input_field(variable)
            if field is None:
                self.skipped.append(variable)
            else:
                self.fields[variable.variable] = field

    def inputs(self) -> dict[str, Any]:
        """The inputs given; empty ones are left to the start node's defaults."""
        return {k: v for k, v in self.cleaned_data.items() if v is not None and v != ""}

    def add_service_error(self, message: str) -> None:
        """Put a run service's message on the field it names, or on the form."""
        match = _INPUT_MESSAGE.match(message)
        name = match["name"] if match else None
        self.add_error(name if name in self.fields else None, message)


def _input_field(variable: StartVariable) -> forms.Field | None:
    label = variable.label or variable.variable
    common: dict[str, Any] = {
        "label": label,
        "required": variable.required,
        "help_text": variable.hint or "",
        "initial": variable.default,
    }
    attrs = {"placeholder": variable.placeholder} if variable.placeholder else {}
    kind = variable.type
    if kind == "text-input":
        return forms.CharField(
            max_length=variable.max_length, widget=forms.TextInput(attrs), **common
        )
    if kind == "paragraph":
        return forms.CharField(
            max_length=variable.max_length,
            widget=forms.Textarea({**attrs, "rows": 4}),
            strip=False,
            **common,
        )
    if kind == "select":
        options = [(option, option) for option in variable.options]
        return forms.ChoiceField(choices=[("", "—"), *options], **common)
    if kind == "number":
        return forms.CharField(widget=forms.NumberInput({**attrs, "step": "any"}), **common)
    if kind == "checkbox":
        # A required checkbox may still be left unticked: false is an answer.
        return forms.BooleanField(**{**common, "required": False})
    if kind == "json_object":
        if isinstance(variable.default, dict):
            common["initial"] = json.dumps(variable.default, indent=2)
        common["help_text"] = common["help_text"] or "A JSON object."
        return forms.CharField(widget=forms.Textarea({**attrs, "rows": 4}), **common)
    return None  # file and file-list: a browser upload is not a file of a run


class AnswerForm(forms.Form):
    """A paused run's human-input form, read generically. The human-input node writes
    `node_title`, `form_content` (shown as text, each `{{#$outputs.name#}}` marker as
    `[name]`), `inputs` (text fields), `actions` (buttons; Dify's DSL calls them
    `user_actions`) and `expires_at` (Unix time); any other entry is shown as it is."""

    KNOWN = frozenset(
        {"node_id", "node_title", "form_content", "content", "inputs", "actions"}
        | {"user_actions", "timeout", "timeout_unit", "expires_at"}
    )

    def __init__(self, *args: Any, form: Mapping[str, Any], **kwargs: Any) -> None:
        kwargs["prefix"] = "answer"
        super().__init__(*args, **kwargs)
        self.node_title = str(form.get("node_title") or form.get("node_id") or "")
        content = str(form.get("form_content") or form.get("content") or "")
        self.content = _OUTPUT_MARKER.sub(r"[\1]", content)
        expires = form.get("expires_at")
        self.expires_at = (
            dt.datetime.fromtimestamp(expires, tz=dt.UTC)
            if isinstance(expires, int | float) and not isinstance(expires, bool)
            else None
        )
        self.details = [
            (str(key), value if isinstance(value, str) else json.dumps(value, indent=2))
            for key, value in form.items()
            if key not in self.KNOWN
        ]
        for name, label, multiline, initial in _form_inputs(form.get("inputs")):
            widget = forms.Textarea({"rows": 4}) if multiline else forms.TextInput()
            self.fields[name] = forms.CharField(
                label=label, required=False, initial=initial, widget=widget, strip=False
            )
        self.actions = _form_actions(form.get("actions") or form.get("user_actions"))
        if self.actions:
            self.fields["action"] = forms.ChoiceField(
                choices=[(action_id, title) for action_id, title, _ in self.actions],
                widget=forms.HiddenInput,
                error_messages={"required": "Choose one of the buttons."},
            )

    def input_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in self.fields if name != "action"]

    def outputs(self) -> dict[str, Any]:
        """The answer as the run service takes it: the inputs, and `action` when chosen."""
        return dict(self.cleaned_data)


def _form_inputs(raw: Any) -> list[tuple[str, str, bool, str]]:
    """(name, label, multiline, initial value) of each input of a form, whether the form
    lists them (Dify's `inputs`) or maps names to them."""
    items: list[tuple[str, Any]] = []
    if isinstance(raw, Mapping):
        items = [(str(name), spec) for name, spec in raw.items()]
    elif isinstance(raw, list):
        for spec in raw:
            if isinstance(spec, Mapping):
                name = spec.get("output_variable_name") or spec.get("variable") or spec.get("name")
                if name:
                    items.append((str(name), spec))
    found = []
    for name, spec in items:
        spec = spec if isinstance(spec, Mapping) else {"value": spec}
        placeholder = spec.get("placeholder")
        if isinstance(placeholder, Mapping):
            placeholder = placeholder.get("value")
        initial = next((v for v in (spec.get("value"), spec.get("default"), placeholder) if v), "")
        multiline = spec.get("type") in ("paragraph", "textarea")
        found.append((name, str(spec.get("label") or name), multiline, str(initial)))
    return found


def _form_actions(raw: Any) -> list[tuple[str, str, str]]:
    """(id, title, style) of each button of a form."""
    actions = []
    for action in raw if isinstance(raw, list) else []:
        if isinstance(action, Mapping) and action.get("id"):
            title = str(action.get("title") or action["id"])
            actions.append((str(action["id"]), title, str(action.get("button_style") or "")))
        elif isinstance(action, str):
            actions.append((action, action, ""))
    return actions
