"""Text analysis shared by the built-in models: normalising, tokenizing, stop words."""

from __future__ import annotations

import re
import unicodedata

# Text is NFKC-normalised (PDF ligatures, full-width forms), case-folded, and Latin accents are
# folded, because users type queries without them ("resume" finds "résumé"). Han, kana and
# Hangul have no reliable spaces, so each of their characters is a token and pairs of them
# carry the words.

CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_TOKEN = re.compile(rf"[{CJK}]|[^\W_{CJK}]+")
CJK_CHAR = re.compile(rf"[{CJK}]")


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
