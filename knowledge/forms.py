"""Console forms of the knowledge base: datasets (with the default splitting rule as a few
plain fields), multi-file uploads, chunk edits and hit testing."""

from __future__ import annotations

from typing import Any

from django import forms

from providers.forms import model_choice_label
from providers.models import Model, ModelKind
from providers.selectors import default_model

from .models import Chunk, Dataset
from .splitting import (
    CHILD_SEGMENTATION,
    CUSTOM_SEGMENTATION,
    PARENT_SEGMENTATION,
    SplitRule,
    SplitRuleError,
)

MODES = [
    ("automatic", "Automatic (recommended)"),
    ("custom", "Custom: cut at a separator"),
    ("hierarchical", "Parent-child: parents cut at a separator, children inside them"),
]
SEARCH_METHODS = [
    ("semantic_search", "Semantic (vectors)"),
    ("full_text_search", "Full text (BM25)"),
    ("hybrid_search", "Hybrid (both, fused)"),
]


def escape_separator(separator: str) -> str:
    """Show a separator as Dify's console writes it (`\\n\\n`), never as raw newlines."""
    return separator.replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")


class DatasetForm(forms.ModelForm):
    """A dataset; its default `process_rule` is edited as mode, separator and sizes and stored
    in Dify's JSON shape."""

    # Declared here: the model field's own choices would need a tenant at import time.
    embedding_model = forms.ModelChoiceField(
        queryset=Model.dangerously_unscoped.none(),
        required=False,
        help_text="Empty: the tenant's default embedding model.",
    )
    mode = forms.ChoiceField(label="Chunking mode", choices=MODES, initial="automatic")
    separator = forms.CharField(
        label="Separator",
        initial=escape_separator(CUSTOM_SEGMENTATION.separator),
        required=False,
        strip=False,
        help_text=r"Custom and parent-child modes: where to cut, escaped (\n\n is a blank line).",
    )
    max_tokens = forms.IntegerField(
        label="Maximum chunk length (tokens)", initial=CUSTOM_SEGMENTATION.max_tokens
    )
    chunk_overlap = forms.IntegerField(
        label="Overlap (tokens)", initial=CUSTOM_SEGMENTATION.chunk_overlap, min_value=0
    )
    child_separator = forms.CharField(
        label="Child separator",
        initial=escape_separator(CHILD_SEGMENTATION.separator),
        required=False,
        strip=False,
        help_text="Parent-child mode only: where children are cut inside a parent.",
    )
    child_max_tokens = forms.IntegerField(
        label="Child maximum length (tokens)",
        initial=CHILD_SEGMENTATION.max_tokens,
        required=False,
        help_text="Parent-child mode only.",
    )

    class Meta:
        model = Dataset
        fields = [
            "name",
            "description",
            "permission",
            "indexing_technique",
            "doc_form",
            "embedding_model",
        ]
        labels = {"permission": "Visible to"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields.get("embedding_model")
        if isinstance(field, forms.ModelChoiceField):
            field.queryset = Model.objects.filter(enabled=True, kind=ModelKind.EMBEDDING)
            field.label_from_instance = model_choice_label  # type: ignore[method-assign,assignment]
            if self.instance._state.adding:
                default = default_model(ModelKind.EMBEDDING)
                self.initial.setdefault("embedding_model", None)
                if self.initial["embedding_model"] is None and default is not None:
                    self.initial["embedding_model"] = default.pk
        if not self.instance._state.adding:
            self._initial_rule(self.instance.process_rule or {})

    def _initial_rule(self, process_rule: dict) -> None:
        try:
            rule = SplitRule.from_process_rule(process_rule)
        except SplitRuleError:
            return  # shown as stored defaults; saving writes a valid rule again
        segmentation = rule.segmentation or CUSTOM_SEGMENTATION
        child = rule.subchunk_segmentation or CHILD_SEGMENTATION
        self.initial.update(
            mode=rule.mode,
            separator=escape_separator(segmentation.separator),
            max_tokens=segmentation.max_tokens,
            chunk_overlap=segmentation.chunk_overlap,
            child_separator=escape_separator(child.separator),
            child_max_tokens=child.max_tokens,
        )

    def clean_name(self) -> str:
        name = (self.cleaned_data.get("name") or "").strip()
        taken = Dataset.objects.filter(name=name)
        if not self.instance._state.adding:
            taken = taken.exclude(pk=self.instance.pk)
        if taken.exists():
            raise forms.ValidationError(f"A dataset named “{name}” already exists.")
        return name

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        mode = data.get("mode")
        if mode is None or data.get("max_tokens") is None or data.get("chunk_overlap") is None:
            return data
        doc_form = data.get("doc_form") or self.instance.doc_form
        if (doc_form == Dataset.DocForm.HIERARCHICAL) != (mode == "hierarchical"):
            raise forms.ValidationError(
                "Parent-child chunks need the parent-child chunking mode, and that mode "
                "needs parent-child chunks."
            )
        data["process_rule"] = self._process_rule(data)
        try:
            SplitRule.from_process_rule(data["process_rule"])
        except SplitRuleError as exc:
            raise forms.ValidationError(f"Chunking rule: {exc}") from exc
        return data

    @staticmethod
    def _process_rule(data: dict[str, Any]) -> dict[str, Any]:
        """Dify's `process_rule` JSON (automatic mode carries no rules: Dify's own defaults)."""
        mode = data["mode"]
        if mode == "automatic":
            return {"mode": "automatic"}
        default = CUSTOM_SEGMENTATION if mode == "custom" else PARENT_SEGMENTATION
        rules: dict[str, Any] = {
            "pre_processing_rules": [
                {"id": "remove_extra_spaces", "enabled": True},
                {"id": "remove_urls_emails", "enabled": False},
            ],
            "segmentation": {
                "separator": data.get("separator") or escape_separator(default.separator),
                "max_tokens": data["max_tokens"],
                "chunk_overlap": data["chunk_overlap"],
            },
        }
        if mode == "hierarchical":
            rules["parent_mode"] = "paragraph"
            rules["subchunk_segmentation"] = {
                "separator": data.get("child_separator")
                or escape_separator(CHILD_SEGMENTATION.separator),
                "max_tokens": data.get("child_max_tokens") or CHILD_SEGMENTATION.max_tokens,
                "chunk_overlap": 0,
            }
        return {"mode": mode, "rules": rules}


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Several files from one `<input type=file multiple>`; each is judged on its own."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data: Any, initial: Any = None) -> list:
        files = data if isinstance(data, list | tuple) else [data] if data else []
        return [file for file in files if file]


class UploadForm(forms.Form):
    """Files (one document each) and, optionally, a text typed in as one more document."""

    uploads = MultipleFileField(
        label="Files",
        required=False,
        help_text="PDF, DOCX, HTML, Markdown, CSV or text; several at once.",
    )
    text_name = forms.CharField(label="Text document name", max_length=255, required=False)
    text = forms.CharField(label="Text", widget=forms.Textarea(attrs={"rows": 6}), required=False)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("text", "").strip() and not data.get("text_name", "").strip():
            self.add_error("text_name", "Name the text document.")
        if not data.get("uploads") and not data.get("text", "").strip():
            raise forms.ValidationError("Choose at least one file, or type a text.")
        return data


class ChunkForm(forms.ModelForm):
    """A chunk's text, answer, keywords and switch; changed text is embedded again on save."""

    keywords = forms.CharField(
        required=False, help_text="Comma-separated.", widget=forms.TextInput(attrs={"size": 80})
    )

    class Meta:
        model = Chunk
        fields = ["content", "answer", "keywords", "enabled"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.instance._state.adding:
            self.initial["keywords"] = ", ".join(str(k) for k in self.instance.keywords or [])

    def clean_content(self) -> str:
        content = (self.cleaned_data.get("content") or "").strip()
        if not content:
            raise forms.ValidationError("A chunk needs some text.")
        return content

    def clean_keywords(self) -> list[str]:
        raw = self.cleaned_data.get("keywords") or ""
        return [word.strip() for word in raw.split(",") if word.strip()]


class HitTestForm(forms.Form):
    """One retrieval test over a dataset, in Dify's retrieval_model terms."""

    query = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), max_length=2000)
    search_method = forms.ChoiceField(choices=SEARCH_METHODS, initial="hybrid_search")
    top_k = forms.IntegerField(min_value=1, max_value=50, initial=4)
    score_threshold = forms.FloatField(
        min_value=0,
        max_value=1,
        required=False,
        help_text="Empty: no threshold.",
    )
    rerank = forms.BooleanField(
        required=False, help_text="Rerank the results with the tenant's rerank model."
    )

    def retrieval_model(self) -> dict[str, Any]:
        """The form as Dify's `retrieval_model` JSON."""
        data = self.cleaned_data
        threshold = data.get("score_threshold")
        shape: dict[str, Any] = {
            "search_method": data["search_method"],
            "top_k": data["top_k"],
            "score_threshold_enabled": threshold is not None,
            "score_threshold": threshold if threshold is not None else 0.0,
            "reranking_enable": bool(data.get("rerank")),
        }
        if data.get("rerank"):
            shape["reranking_mode"] = "reranking_model"
        return shape
