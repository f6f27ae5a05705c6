"""The built-in offline models: no key, no download, deterministic.

They make a fresh install work end to end: `HashingEmbedder` turns text into vectors by
feature hashing, `LexicalReranker` orders documents by BM25, and `ExtractiveChat` answers a
question with the sentences of the conversation's context that match it best. None of them
needs Django.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import itertools
import json
import math
import re
import unicodedata
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from .tokens import count_message_tokens, count_tokens
from .types import (
    ChatEvent,
    ChatMessage,
    Embeddings,
    Finish,
    RerankResult,
    ResponseFormat,
    TextDelta,
    Tool,
    Usage,
)

OFFLINE_CHAT_MODEL = "weft-offline-chat"
OFFLINE_EMBEDDING_MODEL = "weft-offline-embedding"
OFFLINE_EMBEDDING_DIMENSIONS = 512
OFFLINE_RERANK_MODEL = "weft-offline-rerank"

# Work this large (characters) runs in a thread so that the event loop keeps serving.
_INLINE_CHARS = 20_000

# --- Text analysis, shared by the three models ---------------------------------------------
# Text is NFKC-normalised (PDF ligatures, full-width forms), case-folded, and Latin accents are
# folded, because users type queries without them ("resume" finds "résumé"). Han, kana and
# Hangul have no reliable spaces, so each of their characters is a token and pairs of them
# carry the words.

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_TOKEN = re.compile(rf"[{_CJK}]|[^\W_{_CJK}]+")
_CJK_CHAR = re.compile(rf"[{_CJK}]")


def _latin_folding() -> dict[int, str]:
    table = {ord("ø"): "o", ord("đ"): "d", ord("ł"): "l", ord("æ"): "ae", ord("œ"): "oe"}
    for code in range(0xC0, 0x250):
        decomposed = unicodedata.normalize("NFD", chr(code))
        base = "".join(c for c in decomposed if not unicodedata.combining(c))
        if base and base != chr(code):
            table[code] = base
    return table


_FOLD = _latin_folding()

STOPWORDS = frozenset(
    # English
    "a about above after again against all am an and any are as at be because been before"
    " being below between both but by can could did do does doing down during each few for"
    " from further had has have having he her here hers him his how i if in into is it its"
    " itself just me more most my no nor not of off on once only or other our ours out over"
    " own same she should so some such than that the their theirs them then there these they"
    " this those through to too under until up very was we were what when where which while"
    " who whom why will with would you your yours please tell"
    # French (accents folded)
    " au aux avec ce ces c d dans de des du elle en est et etre ete eux il ils je j l la le les"
    " leur lui ma mais me meme mes moi mon n ne nos notre nous on ou par pas pour qu que quel"
    " quelle quels quelles qui quoi comment pourquoi quand s sa se ses son sont sur t ta te"
    " tes toi ton tu un une vos votre vous y"
    # German (umlauts folded)
    " aber als auch auf aus bei bin bis bist da dann das dass dein dem den der die doch dort"
    " du durch ein eine einem einen einer eines er es fur hat hatte ich ihr im ist ja kann"
    " mein mit nach nicht noch nun nur ob oder ohne sehr sein sich sie sind uber um und uns"
    " unter vom von vor war wer wie wir wird wo zu zum zur welche welcher welches warum wann"
    # Spanish
    " el los las una unos unas del al con para por cual cuales donde cuando quien porque como"
    # Chinese particles and question words (one character per token)
    " 的 了 是 在 和 也 就 都 而 及 与 或 吗 呢 吧 啊 么"
    " 什 怎 哪 谁 个 这 那 有 我 你 他 她 它 们".split()
)


def normalise(text: str) -> str:
    """Text as the offline models compare it: NFKC, case-folded, Latin accents folded."""
    return unicodedata.normalize("NFKC", text).casefold().translate(_FOLD)


def tokenize(text: str) -> list[str]:
    """Words of the normalised text, and each Han/kana/Hangul character on its own."""
    return _TOKEN.findall(normalise(text))


# --- HashingEmbedder --------------------------------------------------------------------------
# Each feature gets a stable 64-bit hash (blake2b, never Python's salted hash): its low 46 bits
# pick the bucket and the sign, the next 2 say its kind, which sets its weight. A token's word
# and character n-gram features are summed into a small sparse vector once and cached, since
# words repeat across texts far more often than they are new; a text is then the sum of its
# distinct tokens' vectors, each weighted 1 + ln(count), plus its word pairs, whose hashes are
# mixed from the two words' hashes inside numpy. One bincount builds a whole batch.

_HASH_BITS = 46
_HASH_MASK = np.uint64((1 << _HASH_BITS) - 1)
_SIGN_BIT = np.uint64(_HASH_BITS - 1)
_WORD, _PAIR, _NGRAM, _STOPWORD = 0, 1, 2, 3
# Weight of one feature of each kind (before tf), chosen on the Cranfield set: word pairs
# collide too often in 512 dimensions to weigh more.
_KIND_WEIGHTS = np.array([1.0, 0.2, 0.3, 0.05])
_NGRAM_SIZES = (3, 4, 5)
# Stands for an empty text, which gets a fixed unit vector: a zero vector has no cosine.
_EMPTY = "\x00"
_BATCH = 4096


def _stable_hash(text: str, kind: int) -> int:
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "little") & ((1 << _HASH_BITS) - 1)) | (kind << _HASH_BITS)


def _cells_and_values(hashes: np.ndarray, dimensions: int) -> tuple[np.ndarray, np.ndarray]:
    """Bucket and signed kind weight of each feature hash."""
    kinds = ((hashes >> np.uint64(_HASH_BITS)) & np.uint64(3)).astype(np.intp)
    signs = 1.0 - 2.0 * ((hashes >> _SIGN_BIT) & np.uint64(1)).astype(np.float64)
    cells = ((hashes & _HASH_MASK) % np.uint64(dimensions)).astype(np.intp)
    return cells, _KIND_WEIGHTS[kinds] * signs


# Per dimension: token -> (own hash, cells, values). A plain dict is the fastest lookup here;
# it is emptied when it grows past the bound.
_TOKEN_VECTORS: dict[int, dict[str, tuple[int, np.ndarray, np.ndarray]]] = {}
_TOKEN_VECTORS_BOUND = 1 << 18


def _token_vector(token: str, dimensions: int) -> tuple[int, np.ndarray, np.ndarray]:
    """(the token's own hash, for word pairs; the cells and values of its sparse vector)."""
    grams: set[str] = set()
    if token in STOPWORDS:
        own = _stable_hash(token, _STOPWORD)
    elif token == _EMPTY or _CJK_CHAR.fullmatch(token):
        own = _stable_hash(token, _WORD)
    else:
        own, marked = _stable_hash(token, _WORD), f"<{token}>"
        grams = {marked[i : i + n] for n in _NGRAM_SIZES for i in range(len(marked) - n + 1)}
    hashes = [own, *(_stable_hash(gram, _NGRAM) for gram in sorted(grams))]
    cells, values = _cells_and_values(np.array(hashes, dtype=np.uint64), dimensions)
    cells, inverse = np.unique(cells, return_inverse=True)
    return own, cells, np.bincount(inverse, weights=values)


def _token_vectors(dimensions: int) -> dict[str, tuple[int, np.ndarray, np.ndarray]]:
    cache = _TOKEN_VECTORS.setdefault(dimensions, {})
    if len(cache) > _TOKEN_VECTORS_BOUND:
        cache.clear()
    return cache


def _mix_pairs(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Stable hashes of word pairs from the words' own hashes (splitmix64 finaliser)."""
    mixed = first * np.uint64(0x9E3779B97F4A7C15) ^ (second + np.uint64(0x632BE59BD9B4E019))
    mixed ^= mixed >> np.uint64(31)
    mixed *= np.uint64(0xBF58476D1CE4E5B9)
    mixed ^= mixed >> np.uint64(27)
    return (mixed & _HASH_MASK) | np.uint64(_PAIR << _HASH_BITS)


def _text_vector(
    text: str, dimensions: int, cache: dict[str, tuple[int, np.ndarray, np.ndarray]]
) -> tuple[np.ndarray, np.ndarray]:
    tokens = tokenize(text) or [_EMPTY]
    counts = Counter(tokens)
    parts = []
    for token in counts:
        part = cache.get(token)
        if part is None:
            part = cache[token] = _token_vector(token, dimensions)
        parts.append(part)
    tf = 1.0 + np.log(np.fromiter(counts.values(), dtype=np.float64, count=len(counts)))
    cells = [part[1] for part in parts]
    values = [np.concatenate([part[2] for part in parts]) * np.repeat(tf, list(map(len, cells)))]
    if len(tokens) > 1:
        position = {token: i for i, token in enumerate(counts)}
        own = np.array([part[0] for part in parts], dtype=np.uint64)
        hashes = own[np.fromiter(map(position.__getitem__, tokens), np.intp, len(tokens))]
        pairs, pair_counts = np.unique(_mix_pairs(hashes[:-1], hashes[1:]), return_counts=True)
        pair_cells, pair_values = _cells_and_values(pairs, dimensions)
        cells.append(pair_cells)
        values.append(pair_values * (1.0 + np.log(pair_counts)))
    return np.concatenate(cells), np.concatenate(values)


def hashing_vectors(texts: Sequence[str], dimensions: int) -> np.ndarray:
    """L2-normalised hashing vectors, one row per text (float32)."""
    rows = np.zeros((len(texts), dimensions), dtype=np.float32)
    for start in range(0, len(texts), _BATCH):
        cache = _token_vectors(dimensions)
        batch = [_text_vector(text, dimensions, cache) for text in texts[start : start + _BATCH]]
        offsets = np.arange(len(batch)) * dimensions
        cells = np.concatenate([c + offset for (c, _), offset in zip(batch, offsets, strict=True)])
        values = np.concatenate([v for _, v in batch])
        block = np.bincount(cells, weights=values, minlength=len(batch) * dimensions)
        block = block.reshape(len(batch), dimensions)
        norms = np.linalg.norm(block, axis=1, keepdims=True)
        rows[start : start + len(batch)] = block / np.where(norms == 0.0, 1.0, norms)
    return rows


class HashingEmbedder:
    """Vectors from hashed words, word pairs and character 3- to 5-grams (signed hashing,
    sublinear tf, L2-normalised). An empty text gets one fixed unit vector, never zeros:
    a zero vector has no cosine distance."""

    model = OFFLINE_EMBEDDING_MODEL

    def __init__(self, dimensions: int = OFFLINE_EMBEDDING_DIMENSIONS):
        if dimensions < 1:
            raise ValueError("dimensions must be positive")
        self.dimensions = dimensions

    async def embed(self, texts: Sequence[str]) -> Embeddings:
        texts = list(texts)
        if sum(map(len, texts)) > _INLINE_CHARS:
            vectors = await asyncio.to_thread(hashing_vectors, texts, self.dimensions)
        else:
            vectors = hashing_vectors(texts, self.dimensions)
        tokens = sum(count_tokens(text) for text in texts)
        return Embeddings(vectors=vectors.tolist(), usage=Usage(tokens, 0, estimated=True))


# --- BM25, for the reranker and the extractive chat -------------------------------------------

_K1, _B = 1.2, 0.75
# Share of the score given to the query's word pairs found side by side in the document.
_PAIR_BONUS = 0.1


@dataclass(frozen=True)
class _Analysed:
    terms: Counter[str]
    length: int
    pairs: frozenset[tuple[str, str]]
    tokens: int  # count_tokens of the text, for usage


_SUFFIXES = ("ies", "ing", "ed", "es", "s")


def _stem(token: str) -> str:
    """Strips one common plural or verb ending from a longer word (not "-ss", "-us", "-is"):
    the same for query and documents, so "costs" finds "cost" and "founded" "founding"."""
    if len(token) <= 4 or token in STOPWORDS or token.endswith(("ss", "us", "is")):
        return token
    for suffix in _SUFFIXES:
        if token.endswith(suffix) and len(token) - len(suffix) >= 3:
            return token[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return token


@functools.lru_cache(maxsize=8192)
def _analyse(text: str) -> _Analysed:
    tokens = [_stem(token) for token in tokenize(text)]
    terms = Counter(tokens)
    for first, second in itertools.pairwise(tokens):
        if _CJK_CHAR.fullmatch(first) and _CJK_CHAR.fullmatch(second):
            terms[first + second] += 1
    pairs = frozenset(itertools.pairwise(tokens))
    return _Analysed(terms, len(tokens), pairs, count_tokens(text))


def _query_terms(query: _Analysed) -> list[str]:
    return sorted(term for term in query.terms if term not in STOPWORDS)


def bm25_scores(query: str, documents: Sequence[str]) -> list[float]:
    """Scores in [0, 1]: BM25 (IDF over these documents, query stopwords dropped) divided by
    the score of a document saturating every query term, plus a small share for the query's
    adjacent word pairs that the document also has side by side."""
    return _bm25(_analyse(query), [_analyse(document) for document in documents])


def _bm25(analysed_query: _Analysed, docs: list[_Analysed]) -> list[float]:
    terms = _query_terms(analysed_query)
    if not terms or not docs:
        return [0.0] * len(docs)
    count = len(docs)
    mean_length = sum(doc.length for doc in docs) / count or 1.0
    idf = {}
    for term in terms:
        frequency = sum(1 for doc in docs if term in doc.terms)
        idf[term] = math.log(1.0 + (count - frequency + 0.5) / (frequency + 0.5))
    ceiling = sum(idf.values()) * (_K1 + 1.0)
    query_pairs = {pair for pair in analysed_query.pairs if not set(pair) <= STOPWORDS}
    scores = []
    for doc in docs:
        norm = _K1 * (1.0 - _B + _B * doc.length / mean_length)
        raw = 0.0
        for term in terms:
            tf = doc.terms.get(term, 0)
            if tf:
                raw += idf[term] * tf * (_K1 + 1.0) / (tf + norm)
        paired = len(query_pairs & doc.pairs) / len(query_pairs) if query_pairs else 0.0
        scores.append((raw / ceiling + _PAIR_BONUS * paired) / (1.0 + _PAIR_BONUS))
    return scores


class LexicalReranker:
    """Orders documents by `bm25_scores` against the query; ties keep the input order."""

    model = OFFLINE_RERANK_MODEL

    async def rerank(
        self, query: str, documents: Sequence[str], *, top_n: int | None = None
    ) -> RerankResult:
        if sum(map(len, documents)) > _INLINE_CHARS:
            ranking, tokens = await asyncio.to_thread(self._rank, query, documents)
        else:
            ranking, tokens = self._rank(query, documents)
        if top_n is not None:
            ranking = ranking[: max(top_n, 0)]
        return RerankResult(ranking=ranking, usage=Usage(tokens, 0, estimated=True))

    @staticmethod
    def _rank(query: str, documents: Sequence[str]) -> tuple[list[tuple[int, float]], int]:
        """The ranking, and the tokens billed as rerank APIs do: the query once per document,
        plus the documents."""
        analysed_query = _analyse(query)
        docs = [_analyse(document) for document in documents]
        scores = _bm25(analysed_query, docs)
        ranking = sorted(enumerate(scores), key=lambda item: (-item[1], item[0]))
        return ranking, sum(analysed_query.tokens + doc.tokens for doc in docs)


# --- ExtractiveChat -----------------------------------------------------------------------------

DONT_KNOW = "I don't know: nothing in the provided context answers that."
NO_CONTEXT = (
    "I am Weft's built-in offline model: I answer only from context that comes with the "
    "conversation, such as passages retrieved from a knowledge base, and there is none here. "
    "Connect a model provider for open-ended chat."
)
_MAX_PASSAGES = 3
# A sentence answers when its score reaches this, and joins the best one when it also
# reaches this share of the best score.
_ANSWER_THRESHOLD = 0.12
_RELATIVE_THRESHOLD = 0.6

_CONTEXT_BLOCK = re.compile(
    r"<(context|documents?|knowledge|passages?|sources?|search_results)\b[^>]*>(.*?)</\1\s*>",
    re.IGNORECASE | re.DOTALL,
)
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
# A new line that starts a list item, a numbered source or a heading starts a new passage.
_ITEM_BREAK = re.compile(r"\n(?=[ \t]*(?:[-*•#>|]|\d+[.)]\s|\[\d+\]))")
_SENTENCE = re.compile(
    r"\S.*?(?:[.!?\u2026]+[\"'\u201d\u2019)\]]*(?=\s+[^\sa-z]|\s*$)"
    r"|[\u3002\uff01\uff1f]+[\u300d\u300f\u201d\u2019]*|$)",
    re.DOTALL,
)
# "Dr. Smith", "J. Smith", "Fig. 3" end no sentence.
_ABBREVIATION_END = re.compile(
    r"(?:\b(?i:dr|mr|mrs|ms|prof|vs|fig|inc|ltd|jr|sr|cf|approx)|\b[A-Z])\.$"
)
# Streamed pieces carry their leading space, like a model's tokens.
_STREAM_PIECE = re.compile(rf"\s*[{_CJK}]|\s*[^\s{_CJK}]+|\s+")


def _question_and_context(messages: Sequence[ChatMessage]) -> tuple[str, str]:
    """The last user message (without any context block it carries), and the context: the
    marked blocks of any message if there are some, else every other message."""
    asked = next((i for i in range(len(messages) - 1, -1, -1) if messages[i].role == "user"), -1)
    question = messages[asked].content if asked >= 0 else ""
    texts = [m.content for i, m in enumerate(messages) if i != asked and m.content]
    blocks = [block for text in [*texts, question] for _, block in _CONTEXT_BLOCK.findall(text)]
    return _CONTEXT_BLOCK.sub(" ", question), "\n\n".join(blocks if blocks else texts)


def split_passages(context: str) -> list[str]:
    """Sentences of the context (whitespace runs made single spaces), in order."""
    passages = []
    for paragraph in _PARAGRAPH_BREAK.split(context):
        for item in _ITEM_BREAK.split(paragraph):
            pending = ""
            for match in _SENTENCE.finditer(item):
                sentence = f"{pending} {' '.join(match.group().split())}".strip()
                pending = sentence if _ABBREVIATION_END.search(sentence) else ""
                if sentence and not pending:
                    passages.append(sentence)
            if pending:
                passages.append(pending)
    return passages


def extractive_answer(question: str, context: str) -> str:
    """The 1 to 3 context sentences that best answer the question, in their order, or
    DONT_KNOW."""
    passages = split_passages(context)
    scores = bm25_scores(question, passages)
    best = max(scores, default=0.0)
    if best < _ANSWER_THRESHOLD:
        return DONT_KNOW
    floor = max(_ANSWER_THRESHOLD, _RELATIVE_THRESHOLD * best)
    ranked = sorted(range(len(passages)), key=lambda i: (-scores[i], i))
    chosen = sorted(i for i in ranked[:_MAX_PASSAGES] if scores[i] >= floor)
    return " ".join(passages[i] for i in chosen)


def _empty_value(schema: Any) -> Any:
    if not isinstance(schema, dict):
        return None
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = "null" if "null" in kind else (kind[0] if kind else None)
    if kind == "object":
        return _fill_object(schema, "")
    empty = {"string": "", "integer": 0, "number": 0, "boolean": False, "array": []}
    return empty.get(kind) if isinstance(kind, str) else None


_ANSWER_FIELDS = ("answer", "response", "text", "content", "output", "result", "reply")


def _fill_object(schema: dict[str, Any], answer: str) -> dict[str, Any]:
    properties = schema.get("properties") or {}
    names = schema.get("required") or list(properties)
    strings = [
        n
        for n in names
        if isinstance(properties.get(n), dict)
        and properties[n].get("type") == "string"
        and not properties[n].get("enum")
    ]
    target = next(
        (n for n in strings if n.lower() in _ANSWER_FIELDS), strings[0] if strings else None
    )
    return {n: answer if n == target else _empty_value(properties.get(n)) for n in names}


def _as_json(answer: str, response_format: ResponseFormat) -> str:
    if response_format.type == "json_schema" and isinstance(response_format.schema, dict):
        schema = response_format.schema
        if schema.get("type", "object") == "object" and schema.get("properties"):
            return json.dumps(_fill_object(schema, answer), ensure_ascii=False)
    return json.dumps({"answer": answer}, ensure_ascii=False)


class ExtractiveChat:
    """Answers the last user message with verbatim sentences of the conversation's context:
    the `<context>…</context>` (or documents, knowledge, passages, sources) blocks when any
    message has them, else every other message. Never calls tools; honours JSON response
    formats, `max_tokens` and `stop`; ignores `temperature` (it is deterministic)."""

    model = OFFLINE_CHAT_MODEL

    async def chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        tools: Sequence[Tool] = (),
        response_format: ResponseFormat | None = None,
        stream: bool = True,
        max_tokens: int | None = None,
        temperature: float | None = None,
        stop: Sequence[str] = (),
    ) -> AsyncIterator[ChatEvent]:
        text = self.reply(messages, response_format=response_format)
        reason: Literal["stop", "length"] = "stop"
        cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=-1)
        if cut >= 0:
            text = text[:cut]
        pieces, emitted = [], ""
        for piece in _STREAM_PIECE.findall(text):
            if max_tokens is not None and count_tokens(emitted + piece) > max_tokens:
                reason = "length"
                break
            pieces.append(piece)
            emitted += piece
        if not stream:
            pieces = [emitted] if emitted else []
        for piece in pieces:
            yield TextDelta(piece)
            if stream:
                await asyncio.sleep(0)
        usage = Usage(
            prompt_tokens=count_message_tokens(messages, tools=tools),
            completion_tokens=count_tokens(emitted),
            estimated=True,
        )
        yield Finish(reason=reason, usage=usage)

    def reply(
        self, messages: Sequence[ChatMessage], *, response_format: ResponseFormat | None = None
    ) -> str:
        """The whole answer text, as `chat` streams it (before `max_tokens` and `stop`)."""
        question, context = _question_and_context(messages)
        if not context.strip():
            answer = NO_CONTEXT
        else:
            answer = extractive_answer(question, context)
        if response_format is not None and response_format.type != "text":
            return _as_json(answer, response_format)
        return answer
